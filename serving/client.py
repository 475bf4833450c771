"""A Python client and command line for a server started from this checkout (keys read
for you). Errors raise `ClientError` with the server's status and the field it named; the
command line prints them as one line.

    from serving.client import Client
    client = Client.from_run_dir()
    client.classify("a gripping , funny movie")["label"]
    client.generate("ROMEO:", max_new_tokens=50, seed=1)["text"]
    for chunk in client.stream("ROMEO:"): print(chunk["text"], end="")
    chat = client.conversation(max_new_tokens=60)   # a server-side session
    chat.say("ROMEO:"); chat.say("\nJULIET:"); chat.end()
    client.score("To be, or not to be")["nats_per_char"]   # log-likelihood (docs/scoring.md)
    client.predict("sentiment", {"texts": ["fine", "dull"]})   # any served model, any body

python -m serving.client classify "a gripping , funny movie"
python -m serving.client generate "ROMEO:" --temperature 0.8 --max-new-tokens 200 --stream
python -m serving.client generate "ROMEO:" --session new          # prints the session's id
python -m serving.client generate $'\nJULIET:' --session <id>     # continues it
python -m serving.client predict sentiment '{"text": "fine"}'    # any model (handlers/registry.py)
python -m serving.client predict lm                               # its registry example request
python -m serving.client --url http://host:8080 --key KEY classify "fine"   # any server
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import requests

from handlers import registry
from serving.connection import REPLY_TIMEOUT_S, Connection
from serving.server_config import DEFAULT_RUN_DIR, ServerError

URL_ENV = "RNN_SERVE_URL"
KEY_ENV = "RNN_SERVE_KEY"
# Seconds a stream may go without a byte before the client gives up on it (docs/faults.md).
# A healthy stream sends a line per handler call: well under a second even under full load.
STREAM_IDLE_S = 30.0


class ClientError(Exception):
    """The server refused or failed a request (or could not be reached: status 0)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.field = field


class Client:
    """Our API over HTTP, with the keys of the server it was made for."""

    def __init__(self, connection: Connection, timeout: float = REPLY_TIMEOUT_S) -> None:
        self.connection = connection
        self.timeout = timeout

    @classmethod
    def from_url(cls, url: str, key: str | None = None) -> Client:
        """A server anywhere (the container, another host): its inference URL and key."""
        return cls(Connection(url.rstrip("/"), "", "", inference_key=key))

    @classmethod
    def from_run_dir(cls, run_dir: str = str(DEFAULT_RUN_DIR)) -> Client:
        try:
            return cls(Connection.from_run_dir(run_dir))
        except ServerError as exc:
            raise ClientError(0, str(exc)) from exc

    def classify(self, text: str | list[str], explain: bool = False) -> dict[str, Any]:
        payload: dict[str, Any] = {"texts": text} if isinstance(text, list) else {"text": text}
        if explain:
            payload["explain"] = True
        return self.predict("sentiment", payload)

    def predict(self, model: str, payload: Any) -> Any:
        """``payload`` as JSON to ``/predictions/<model>``: the answer of any served model."""
        return _post(self.connection, model, payload, self.timeout).json()

    def generate(self, prompt: str, **params: Any) -> dict[str, Any]:
        return generate(self.connection, {**params, "prompt": prompt}, self.timeout)

    def stream(self, prompt: str, **params: Any) -> Iterator[dict[str, Any]]:
        return generate_stream(self.connection, {**params, "prompt": prompt}, self.timeout)

    def score(self, text: str, top: int = 0) -> dict[str, Any]:
        """The LM's log-likelihood of ``text`` read from its start state (a scoring-only
        request: echo, no tokens generated): ``nats`` (negative total log-probability),
        ``nats_per_char`` and the per-token ``logprobs`` object with ``top`` alternatives."""
        payload = {"prompt": text, "max_new_tokens": 0, "echo": True, "logprobs": top}
        logprobs = generate(self.connection, payload, self.timeout)["logprobs"]
        nats = -sum(value for value in logprobs["token_logprobs"] if value is not None)
        return {"nats": nats, "nats_per_char": nats / max(len(text), 1), "logprobs": logprobs}

    def conversation(self, **defaults: Any) -> Conversation:
        return Conversation(self, defaults)


class Conversation:
    """A server-side session: each `say` continues from everything said and generated so far,
    and the server reads only the new prompt (docs/api.md, "Sessions")."""

    def __init__(self, client: Client, defaults: dict[str, Any]) -> None:
        self.client = client
        self.defaults = defaults
        self.session: str | None = None

    def say(self, prompt: str, **params: Any) -> dict[str, Any]:
        answer = self.client.generate(
            prompt, **{**self.defaults, **params, "session": self.session or "new"}
        )
        self.session = answer["session"]
        return answer

    def end(self, prompt: str = "\n", **params: Any) -> dict[str, Any] | None:
        """A last turn that also frees the session on the server (None if none was opened)."""
        if self.session is None:
            return None
        answer = self.client.generate(
            prompt, **{**self.defaults, **params, "session": self.session, "end_session": True}
        )
        self.session = None
        return answer


def classify(connection: Connection, text: str | list[str], timeout: float = 30) -> Any:
    return Client(connection, timeout).classify(text)


def generate(
    connection: Connection, payload: dict[str, Any], timeout: float = REPLY_TIMEOUT_S
) -> Any:
    return _post(connection, "lm", {**payload, "stream": False}, timeout).json()


def generate_stream(
    connection: Connection, payload: dict[str, Any], timeout: float = REPLY_TIMEOUT_S
) -> Iterator[dict[str, Any]]:
    """Yield the streamed chunks: newline-delimited JSON objects, the last with finish_reason.

    A last line with finish_reason "error" (the request failed after its first chunk) raises
    ClientError. No byte for ``min(timeout, STREAM_IDLE_S)`` seconds raises requests' timeout:
    a healthy stream sends a line per handler call, and TorchServe 0.12 can leave a stream
    whose worker died open with nothing more to say (docs/faults.md)."""
    idle = min(timeout, STREAM_IDLE_S)
    reply = _post(connection, "lm", {**payload, "stream": True}, (timeout, idle), stream=True)
    # Lines as bytes (NDJSON is UTF-8, which json.loads reads): decoded text would also split
    # at U+2028 and the like, which a JSON string may hold unescaped. chunk_size=None hands
    # each chunk over as it arrives instead of waiting for 512 bytes.
    for line in reply.iter_lines(chunk_size=None):
        if line.strip():
            yield _checked(json.loads(line))


def _checked(line: dict[str, Any]) -> dict[str, Any]:
    if line.get("finish_reason") == "error":
        message = f"the stream ended with an error line: {line.get('error')}"
        raise ClientError(int(line.get("code") or 500), message, line.get("field"))
    return line


def _post(
    connection: Connection,
    model: str,
    payload: dict[str, Any],
    timeout: float | tuple[float, float],
    stream: bool = False,
) -> requests.Response:
    url = f"{connection.inference_url}/predictions/{model}"
    try:
        headers = connection.inference_headers()
        reply = requests.post(url, json=payload, headers=headers, timeout=timeout, stream=stream)
    except requests.ConnectionError as exc:
        raise ClientError(0, f"no server answers at {url} ({type(exc).__name__})") from exc
    if reply.status_code != 200:
        try:
            body = reply.json()
        except ValueError:
            body = {}
        detail = body.get("error") if isinstance(body, dict) else None
        field = body.get("field") if isinstance(body, dict) else None
        raise ClientError(reply.status_code, str(detail or reply.text.strip()), field)
    return reply


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="folder of the running server")
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV),
        help=f"inference URL of a server anywhere (or ${URL_ENV}); default: the --run-dir one",
    )
    parser.add_argument(
        "--key", default=os.environ.get(KEY_ENV), help=f"its inference key (or ${KEY_ENV})"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    classify_cmd = commands.add_parser("classify", help="sentiment of one or more texts")
    classify_cmd.add_argument("texts", nargs="+")
    gen = commands.add_parser("generate", help="continue a prompt")
    gen.add_argument("prompt")
    gen.add_argument("--max-new-tokens", type=int, default=None)
    gen.add_argument("--temperature", type=float, default=None)
    gen.add_argument("--top-k", type=int, default=None)
    gen.add_argument("--top-p", type=float, default=None)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    gen.add_argument("--stream", action="store_true")
    gen.add_argument("--session", help='"new" opens a session; an id continues one')
    gen.add_argument("--end-session", action="store_true", help="forget the session afterwards")
    any_model = commands.add_parser("predict", help="one JSON request to any served model")
    any_model.add_argument("model", choices=registry.names())
    any_model.add_argument("body", nargs="?", help="JSON (default: its registry example)")
    args = parser.parse_args()
    try:
        _run(args)
    except ClientError as exc:
        sys.exit(f"error: {exc}")


def _run(args: argparse.Namespace) -> None:
    if args.url:
        connection = Client.from_url(args.url, args.key).connection
    else:
        connection = Client.from_run_dir(args.run_dir).connection

    if args.command == "predict":
        try:
            body = json.loads(args.body) if args.body else registry.get(args.model).examples[0]
        except ValueError as exc:
            raise ClientError(0, f"the body is not JSON: {exc}") from exc
        print(json.dumps(Client(connection).predict(args.model, body), indent=2))
        return
    if args.command == "classify":
        texts = args.texts if len(args.texts) > 1 else args.texts[0]
        print(json.dumps(classify(connection, texts), indent=2))
        return
    options = {
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "seed": args.seed,
        "stop": args.stop,
        "session": args.session,
        "end_session": args.end_session or None,
    }
    payload = {"prompt": args.prompt, **{k: v for k, v in options.items() if v is not None}}
    if not args.stream:
        print(json.dumps(generate(connection, payload), indent=2))
        return
    sys.stdout.write(args.prompt)
    session = None
    for chunk in generate_stream(connection, payload):
        session = session or chunk.get("session")
        sys.stdout.write(chunk.get("text", ""))
        sys.stdout.flush()
    sys.stdout.write("\n")
    if session:
        print(f"[session {session}]", file=sys.stderr)


if __name__ == "__main__":
    main()
