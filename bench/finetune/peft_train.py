"""Hugging Face transformers + PEFT on PyTorch CPU, trained on exactly what aiaas trained
on: the token sequences, taught-token masks and batches aiaas's finetune_bench wrote
(sequences.json), the same GGUF dequantised by transformers' GGUF loader, the same LoRA
shape, AdamW settings and learning-rate schedule. Prints one JSON object: tokens/s over
the timed steps and the mean training loss of the last epoch.

    python peft_train.py MODEL.gguf SEQUENCES.json --threads 2
"""
import argparse
import json
import math
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("sequences")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--padded", action="store_true",
                    help="one padded forward per batch (the usual Trainer way) instead of one per example")
    args = ap.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.sequences) as f:
        data = json.load(f)
    o = data["options"]
    folder, name = os.path.split(os.path.abspath(args.gguf))
    started = time.time()
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    load_s = time.time() - started
    names = {"Q": "q_proj", "K": "k_proj", "V": "v_proj", "O": "o_proj",
             "Gate": "gate_proj", "Up": "up_proj", "Down": "down_proj"}
    lora = LoraConfig(r=o["lora"]["rank"], lora_alpha=o["lora"]["alpha"], lora_dropout=o["lora"]["dropout"],
                      target_modules=[names[t] for t in o["lora"]["targets"]], bias="none",
                      task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=o["learning_rate"], betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=o["weight_decay"])
    steps = data["batches"]
    total = len(steps)
    warmup = math.ceil(o["warmup_ratio"] * total)

    def rate(step):  # aiaas's schedule: linear warm-up, then linear decay to 0
        if step < warmup:
            return (step + 1) / warmup
        return (total - step) / max(total - warmup, 1)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, rate)
    seqs = data["sequences"]
    per_epoch = math.ceil(len(seqs) / o["batch_size"])
    losses, timed_tokens, timed_s, step_rates = [], 0, 0.0, []
    for i, batch in enumerate(steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        taught = sum(sum(seqs[j]["learn"][1:]) for j in batch)
        tokens = sum(len(seqs[j]["tokens"]) for j in batch)
        total_loss = 0.0
        if args.padded:
            width = max(len(seqs[j]["tokens"]) for j in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            for r, j in enumerate(batch):
                s = seqs[j]
                n = len(s["tokens"])
                ids[r, :n] = torch.tensor(s["tokens"])
                mask[r, :n] = 1
                labels[r, :n] = torch.tensor([t if l else -100 for t, l in zip(s["tokens"], s["learn"])])
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                ignore_index=-100, reduction="sum") / taught
            loss.backward()
            total_loss = loss.item()
        else:
            for j in batch:
                s = seqs[j]
                ids = torch.tensor([s["tokens"]])
                labels = torch.tensor([[t if l else -100 for t, l in zip(s["tokens"], s["learn"])]])
                logits = model(input_ids=ids).logits[:, :-1]
                loss = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                    ignore_index=-100, reduction="sum") / taught
                loss.backward()
                total_loss += loss.item()
        opt.step()
        sched.step()
        dt = time.perf_counter() - t0
        if i > 0:  # the first step warms caches on both sides and is left out
            timed_tokens += tokens
            timed_s += dt
            step_rates.append(tokens / dt)
        losses.append(total_loss)
        print(json.dumps({"step": i + 1, "loss": total_loss, "seconds": dt, "tokens": tokens}),
              file=sys.stderr)
    last = losses[-per_epoch:]
    print(json.dumps({
        "tokens_per_second": timed_tokens / timed_s,
        "step_rates": step_rates,
        "final_loss": sum(last) / len(last),
        "first_loss": losses[0],
        "steps": total,
        "load_seconds": load_s,
        "torch": torch.__version__,
        "threads": args.threads,
        "padded": args.padded,
    }))


if __name__ == "__main__":
    main()
