"""supervisord event listener: every program's output on the terminal, each line prefixed with its name.

supervisord writes each program's output to var/log/<name>.log; with ``stdout_events_enabled`` it also sends
it as PROCESS_LOG events to this listener (the documented listener protocol: READY, a header line, a payload of
``len`` bytes, RESULT). The lines go to stderr, which supervisord passes to its own stdout: the terminal shows
``worker-email    | ...`` (one prefix per program). stdout is the protocol channel, so nothing else is written there.
"""

from __future__ import annotations

import sys

WIDTH = 16


def _headers(line: bytes) -> dict[str, str]:
    return dict(token.split(":", 1) for token in line.decode().split())


def main() -> None:
    stdin, stdout, out = sys.stdin.buffer, sys.stdout.buffer, sys.stderr.buffer
    partial: dict[str, bytes] = {}  # per program, a line not finished in its last chunk
    while True:
        stdout.write(b"READY\n")
        stdout.flush()
        header = stdin.readline()
        if not header:
            return  # supervisord went away
        payload = stdin.read(int(_headers(header)["len"]))
        first, _, data = payload.partition(b"\n")
        name = _headers(first).get("processname", "?")
        text = partial.pop(name, b"") + data
        lines = text.split(b"\n")
        if lines[-1]:
            partial[name] = lines[-1]
        prefix = f"{name:<{WIDTH}}| ".encode()
        for line in lines[:-1]:
            # One write a line: supervisord reads this pipe in whatever chunks it finds, and its own log lines go
            # to the same terminal between them; a line written whole is never split.
            out.write(prefix + line + b"\n")
            out.flush()
        stdout.write(b"RESULT 2\nOK")
        stdout.flush()


if __name__ == "__main__":
    main()
