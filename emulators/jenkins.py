"""Jenkins emulator on loopback: remote build trigger, queue items, builds and CSRF crumbs.

Shapes per Jenkins' "Remote Access API" (https://www.jenkins.io/doc/book/using/remote-access-api/: POST
`…/buildWithParameters` with the parameters as form data, Basic auth with user and API token) and "CSRF
Protection" (https://www.jenkins.io/doc/book/security/csrf-protection/: the crumb is bound to the user and the web
session), with the details collected in shared/API-SHAPES.md §4.4:

- `GET /crumbIssuer/api/json` → `{"_class", "crumb", "crumbRequestField": "Jenkins-Crumb"}` and a `JSESSIONID.…`
  session cookie. With `crumb_required`, a POST without that session's crumb gets 403 "No valid crumb was
  included in the request" (current Jenkins exempts API-token requests, so it is off by default).
- `POST /job/<folder>/job/<name>/buildWithParameters` → 201, empty body, `Location: <base>/queue/item/<id>/`.
  Parameters a job does not define are dropped, as Jenkins does (when the job lists its `parameters`). A trigger
  with the same parameters as an item still waiting in the queue is folded into it, and its Location is answered
  (Jenkins' `Queue.QueueAction.shouldSchedule`, https://javadoc.jenkins.io/hudson/model/Queue.QueueAction.html:
  ParametersAction only asks for a new item when the parameters differ).
- `GET /queue/item/<id>/api/json` → `{"_class", "id", "why", "blocked", "buildable", "cancelled", "inQueueSince",
  "params", "task"}`; while waiting there is no `executable`; once the build started it is `{"number", "url"}`,
  and `null` with `cancelled: true` for a cancelled item.
- `GET /job/<name>/<n>/api/json` → `{"number", "url", "building", "result", "duration", "timestamp", "queueId"}`,
  `result` null while building, then SUCCESS | UNSTABLE | FAILURE | ABORTED | NOT_BUILT.
- 401 for missing or wrong credentials, 404 for unknown jobs, queue items and builds, 405 for a GET where a POST is
  required. Faults `(status, headers)` queued in `faults` answer the next requests, whatever they are.

Time is counted in polls, not seconds: a queue item waits for `Job.queue_polls` polls of it, then its build
starts (its `hook` runs with the parameters, in the polling request) and reports `building` for `Job.build_polls`
polls of it. The query string (`?tree=…`) is ignored: the whole object is returned. Builds are kept in
`builds`, every request in `requests`.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from emulators._loopback import LoopbackServer, reply
from emulators.http_receiver import Request

NO_CRUMB = "No valid crumb was included in the request"


@dataclass
class Job:
    result: str = "SUCCESS"
    queue_polls: int = 1  # polls of its queue item answered before the build starts
    build_polls: int = 1  # polls of the build answered with building: true
    parameters: tuple[str, ...] | None = None  # the parameters it defines; None: keep whatever is sent
    hook: Callable[[dict[str, str]], str | None] | None = None  # runs as the build starts; returns a result or None
    duration_ms: int = 1500


@dataclass
class Build:
    job: str
    params: dict[str, str]
    queue_id: int
    in_queue_since_ms: int
    number: int | None = None  # set when the build starts
    result: str | None = None  # set when the hook has run
    cancelled: bool = False
    hook_error: str | None = None  # what the hook raised (the build then fails)
    queue_polls: int = 0
    build_polls: int = 0
    started_ms: int = 0


class JenkinsEmulator(LoopbackServer):
    def __init__(
        self,
        jobs: dict[str, Job] | None = None,
        user: str = "aiops",
        token: str = "11d5e0c5a6b2f8e4d7c3b9a1f0e2d4c6b8",
        crumb_required: bool = False,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = {"remediate": Job()} if jobs is None else jobs
        self.user, self.token, self.crumb_required = user, token, crumb_required
        self.faults: list[tuple[int, dict[str, str]]] = []
        self.builds: list[Build] = []  # queue item n is builds[n - 1]
        self.requests: list[Request] = []
        self.clock = clock
        self._rng = random.Random(seed)
        self._cookie = f"JSESSIONID.{self._rng.getrandbits(32):08x}"
        self._crumbs: dict[str, str] = {}  # session → crumb
        self._lock = threading.Lock()
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
                emulator._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                emulator._handle(self, "POST")

        super().__init__(Handler)
        self.url = self.base

    def cancel(self, queue_id: int) -> bool:
        """Cancel a queue item whose build has not started; False if it had."""
        with self._lock:
            build = self.builds[queue_id - 1]
            build.cancelled = build.number is None
            return build.cancelled

    def queue_url(self, queue_id: int) -> str:
        return f"{self.base}/queue/item/{queue_id}/"

    def job_url(self, job: str) -> str:
        return self.base + "".join(f"/job/{quote(name, safe='')}" for name in job.split("/")) + "/"

    def build_url(self, job: str, number: int) -> str:
        return self.job_url(job) + f"{number}/"

    # --- requests ---------------------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        body = handler.rfile.read(int(handler.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        path = urlsplit(handler.path).path
        with self._lock:
            self.requests.append(Request(method, handler.path, headers, body))
            fault = self.faults.pop(0) if self.faults else None
        if fault:
            return _text(handler, fault[0], "fault injected by the emulator", fault[1])
        if not self._authenticated(headers.get("authorization", "")):
            return _text(handler, 401, f"Invalid password/token for user: {self.user}",
                         {"WWW-Authenticate": 'Basic realm="Jenkins"'})
        if path == "/crumbIssuer/api/json" and method == "GET":
            return self._issue_crumb(handler)
        if path.startswith("/queue/item/"):
            return self._queue_item(handler, method, path)
        job, rest = _job_and_rest(path)
        if job not in self.jobs:
            return _text(handler, 404, "Not Found")
        if rest == ["buildWithParameters"]:
            if method != "POST":
                return _text(handler, 405, "HTTP method GET is not supported by this URL")
            if self.crumb_required and not self._crumb_ok(headers):
                return _text(handler, 403, NO_CRUMB)
            return self._trigger(handler, job, dict(parse_qsl(body.decode(), keep_blank_values=True)))
        if len(rest) == 3 and rest[0].isdigit() and rest[1:] == ["api", "json"] and method == "GET":
            return self._build(handler, job, int(rest[0]))
        return _text(handler, 404, "Not Found")

    def _authenticated(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        try:
            return scheme == "Basic" and base64.b64decode(encoded).decode() == f"{self.user}:{self.token}"
        except ValueError:
            return False

    def _issue_crumb(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            session = f"node0{self._rng.getrandbits(64):016x}"
            self._crumbs[session] = f"{self._rng.getrandbits(128):032x}"
            crumb = self._crumbs[session]
        body = {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": crumb,
                "crumbRequestField": "Jenkins-Crumb"}
        _json(handler, 200, body, {"Set-Cookie": f"{self._cookie}={session}; Path=/; HttpOnly"})

    def _crumb_ok(self, headers: dict[str, str]) -> bool:
        cookies = SimpleCookie(headers.get("cookie", ""))
        session = cookies[self._cookie].value if self._cookie in cookies else None
        return session is not None and self._crumbs.get(session) == headers.get("jenkins-crumb")

    def _trigger(self, handler: BaseHTTPRequestHandler, job: str, params: dict[str, str]) -> None:
        defined = self.jobs[job].parameters
        if defined is not None:
            params = {k: v for k, v in params.items() if k in defined}
        with self._lock:
            waiting = [b for b in self.builds if (b.job, b.params, b.number, b.cancelled) == (job, params, None, False)]
            if not waiting:
                self.builds.append(Build(job, params, len(self.builds) + 1, self._now_ms()))
            queue_id = waiting[0].queue_id if waiting else len(self.builds)
        _text(handler, 201, "", {"Location": self.queue_url(queue_id)})

    def _queue_item(self, handler: BaseHTTPRequestHandler, method: str, path: str) -> None:
        parts = path.strip("/").split("/")  # queue item <id> api json
        if method != "GET" or len(parts) != 5 or not parts[2].isdigit() or parts[3:] != ["api", "json"]:
            return _text(handler, 404, "Not Found")
        with self._lock:
            build = self.builds[int(parts[2]) - 1] if 1 <= int(parts[2]) <= len(self.builds) else None
            starting = build is not None and self._poll_queue(build)
        if build is None:
            return _text(handler, 404, "Not Found")
        if starting:
            self._execute(build)  # outside the lock: a hook may call back into this emulator
        with self._lock:
            body = self._queue_json(build)
        _json(handler, 200, body)

    def _poll_queue(self, build: Build) -> bool:
        """Count a poll of the queue item; True if the build starts now (it gets its number)."""
        build.queue_polls += 1
        if build.number is not None or build.cancelled or build.queue_polls <= self.jobs[build.job].queue_polls:
            return False
        build.number = 1 + sum(b.job == build.job and b.number is not None for b in self.builds)
        build.started_ms = self._now_ms()
        return True

    def _execute(self, build: Build) -> None:
        job = self.jobs[build.job]
        result = job.result
        if job.hook is not None:
            try:
                result = job.hook(dict(build.params)) or job.result
            except Exception as exc:  # noqa: BLE001 - a failing build step fails the build
                build.hook_error, result = repr(exc), "FAILURE"
        with self._lock:
            build.result = result

    def _queue_json(self, build: Build) -> dict:
        params = "".join(f"\n{k}={v}" for k, v in build.params.items())
        item = {"id": build.queue_id, "blocked": False, "cancelled": build.cancelled,
                "inQueueSince": build.in_queue_since_ms, "params": params,
                "task": {"_class": "hudson.model.FreeStyleProject", "name": build.job.rsplit("/", 1)[-1],
                         "url": self.job_url(build.job)}}
        if build.number is None and not build.cancelled:  # waiting: no `executable` at all
            return {"_class": "hudson.model.Queue$BuildableItem", **item, "buildable": True,
                    "why": "Waiting for next available executor"}
        executable = None if build.cancelled else {"_class": "hudson.model.FreeStyleBuild", "number": build.number,
                                                   "url": self.build_url(build.job, build.number)}
        return {"_class": "hudson.model.Queue$LeftItem", **item, "buildable": False, "why": None,
                "executable": executable}

    def _build(self, handler: BaseHTTPRequestHandler, job: str, number: int) -> None:
        with self._lock:
            build = next((b for b in self.builds if b.job == job and b.number == number), None)
            body = None if build is None else self._build_json(build)
        if body is None:
            return _text(handler, 404, "Not Found")
        _json(handler, 200, body)

    def _build_json(self, build: Build) -> dict:
        """Count a poll of the build and describe it."""
        job, number = build.job, build.number
        build.build_polls += 1
        building = build.result is None or build.build_polls <= self.jobs[job].build_polls
        return {"_class": "hudson.model.FreeStyleBuild", "number": number, "url": self.build_url(job, number),
                "queueId": build.queue_id, "building": building, "result": None if building else build.result,
                "duration": 0 if building else self.jobs[job].duration_ms, "timestamp": build.started_ms,
                "fullDisplayName": f"{job.replace('/', ' » ')} #{number}"}

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


def _job_and_rest(path: str) -> tuple[str | None, list[str]]:
    """`/job/a/job/b/7/api/json` → (`a/b`, [`7`, `api`, `json`])."""
    parts, names = path.strip("/").split("/"), []
    while len(parts) >= 2 and parts[0] == "job":
        names.append(unquote(parts[1]))
        parts = parts[2:]
    return ("/".join(names) or None), parts


def _text(handler: BaseHTTPRequestHandler, status: int, text: str, headers: dict | None = None) -> None:
    reply(handler, status, text.encode(), "text/plain;charset=utf-8", headers)


def _json(handler: BaseHTTPRequestHandler, status: int, body: dict, headers: dict | None = None) -> None:
    reply(handler, status, json.dumps(body).encode(), "application/json;charset=utf-8", headers)
