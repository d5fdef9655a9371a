"""A fine-tuning file for the benchmark: 32 support conversations of a made-up product
(system prompt, two user turns, two assistant replies), 150-250 tokens each, in OpenAI's
chat format. Deterministic."""
import json
import random
import sys

rng = random.Random(7)
PRODUCTS = ["Lumen desk lamp", "Orbit kettle", "Nimbus air purifier", "Tessera keyboard"]
ISSUES = ["does not turn on", "makes a clicking noise", "shows a red light", "stopped connecting to Wi-Fi",
          "is slower than before", "restarts by itself"]
STEPS = ["unplug it for thirty seconds and plug it back in", "hold the reset button for ten seconds",
         "update the firmware from the settings page", "try another wall socket",
         "clean the filter under the base", "remove and re-pair it in the app"]


def reply(product, issue):
    steps = rng.sample(STEPS, 3)
    return (f"I'm sorry your {product} {issue}. First, {steps[0]}. If that does not help, {steps[1]}. "
            f"As a last step, {steps[2]}. Most of the time this fixes it; if not, reply with the serial "
            f"number printed under the {product.split()[-1]} and we will arrange a replacement under warranty.")


lines = []
for i in range(32):
    product, issue = rng.choice(PRODUCTS), rng.choice(ISSUES)
    messages = [
        {"role": "system", "content": "You are Quillon, the support assistant of Brightware. Answer kindly, "
                                      "in full sentences, with numbered steps where they help."},
        {"role": "user", "content": f"Hello, my {product} {issue}. What can I do?"},
        {"role": "assistant", "content": reply(product, issue)},
        {"role": "user", "content": "Thanks. How long is the warranty, and do I need the receipt?"},
        {"role": "assistant", "content": f"The {product} has a two-year warranty from the day of purchase. "
                                         "A receipt or an order number helps, but the serial number alone is "
                                         "enough for us to look up the date it shipped."},
    ]
    lines.append(json.dumps({"messages": messages}))
sys.stdout.write("\n".join(lines) + "\n")
