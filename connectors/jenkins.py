"""Jenkins action: trigger a parameterized job, follow it through the queue, wait for its result.

Shapes from Jenkins' documentation, "Remote Access API" (https://www.jenkins.io/doc/book/using/remote-access-api/)
and "CSRF Protection" (https://www.jenkins.io/doc/book/security/csrf-protection/), summarized with their other
sources in shared/API-SHAPES.md §4.4:

1. Trigger: `POST <job>/buildWithParameters`, the parameters as form fields, Basic auth with the user and an
   API token; a job in a folder is `/job/<folder>/job/<name>/`, each name URL-quoted. Jenkins answers
   201 with `Location: <root>/queue/item/<id>/`.
   Crumb: requests with an API token are exempt from CSRF protection in current Jenkins, so none is sent
   at first. When Jenkins answers 403 "No valid crumb was included in the request", one is fetched from
   `GET /crumbIssuer/api/json` (`{"crumbRequestField": "Jenkins-Crumb", "crumb": …}`), sent as that header
   with the session cookie the issuer set (the httpx client keeps it), and kept for later requests.
2. Queue: `GET <queue item>/api/json` until `executable` (`{"number", "url"}`) appears; `cancelled: true`
   raises ActionCancelled. Waiting longer than `queue_timeout_s` raises ActionTimeout (with Jenkins' `why`).
3. Build: `GET <build>/api/json` until `building` is false; `result` SUCCESS | UNSTABLE | FAILURE | ABORTED |
   NOT_BUILT is the outcome, and only SUCCESS is a success. Longer than `build_timeout_s`: ActionTimeout.

Errors: 401 (credentials refused), 403 (no permission), 404 (job, queue item or build not found) and any
other 4xx are PermanentDeliveryError, not retried; timeouts, connection errors, 408, 429 and 5xx are
retried per request under the shared policy (RetrySettings), then RetriesExhausted. Polls wait with the
injected `sleep` and read the injected `clock`.

Idempotency: Jenkins has no idempotency key. With `idempotency_param` set (e.g. `AIOPS_EXECUTION`) the
caller's key is sent as that build parameter: the job must define it (Jenkins drops undefined
parameters) and can refuse a key it has already seen. It also makes a retried trigger safe while the
build waits: Jenkins folds a request with the same parameters into the item already in the queue
(Queue.QueueAction.shouldSchedule, https://javadoc.jenkins.io/hudson/model/Queue.QueueAction.html).
After a crash, `follow(queue_url)` resumes from the persisted `QueuedBuild.queue_url` without triggering
again; Jenkins forgets a queue item a few minutes after its build starts (then 404), so persist
`BuildRef.url` too and resume with `wait_for_result`.

Hosts: URLs Jenkins hands back (Location, `executable.url`, built from its configured root URL) are
followed on the configured scheme and host only, so the credentials never go anywhere else.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

import httpx
from pydantic import Field, SecretStr

from connectors._http import Outbound, RetrySettings
from connectors.errors import ActionCancelled, ActionTimeout, ConfigurationError, ConnectorError, PermanentDeliveryError

__all__ = ["BuildRef", "BuildResult", "JenkinsAction", "JenkinsConfig", "QueuedBuild", "job_path"]

Outcome = Literal["SUCCESS", "UNSTABLE", "FAILURE", "ABORTED", "NOT_BUILT"]
_OUTCOMES = get_args(Outcome)
_HANDLED = (401, 403, 404)  # answered with a precise message instead of the generic refusal


class JenkinsConfig(RetrySettings):
    url: str = Field(pattern=r"^https?://", description="Jenkins' root URL, with its context path if it has one")
    user: str = Field(min_length=1)
    api_token: SecretStr = Field(min_length=1)
    poll_interval_s: float = Field(2.0, gt=0, le=60)
    queue_timeout_s: float = Field(300.0, gt=0)
    build_timeout_s: float = Field(1800.0, gt=0)
    idempotency_param: str | None = Field(
        None, min_length=1, description="build parameter carrying the caller's idempotency key (the job must define it)"
    )


@dataclass(frozen=True)
class QueuedBuild:
    job: str | None  # None when followed from a persisted queue URL alone
    queue_url: str  # persist it to follow the build after a crash


@dataclass(frozen=True)
class BuildRef:
    job: str
    number: int
    url: str


@dataclass(frozen=True)
class BuildResult:
    build: BuildRef
    outcome: Outcome
    duration_s: float

    @property
    def success(self) -> bool:
        return self.outcome == "SUCCESS"


def job_path(job: str) -> str:
    """`folder/name` → `/job/folder/job/name/`, each name URL-quoted."""
    names = job.strip("/").split("/")
    if not all(names):
        raise ConfigurationError(f"not a Jenkins job path: {job!r} (names separated by '/', none empty)")
    return "".join(f"/job/{quote(name, safe='')}" for name in names) + "/"


class JenkinsAction(Outbound):
    """Runs Jenkins jobs as remediation actions."""

    what = "Jenkins"

    def __init__(self, config: JenkinsConfig, **seams: Any) -> None:
        super().__init__(config, **seams)
        self.config: JenkinsConfig = config
        self._base = config.url.rstrip("/")
        self._crumb: dict[str, str] = {}

    def run(self, job: str, params: Mapping[str, str], idempotency_key: str | None = None) -> BuildResult:
        """Trigger, wait for the build to start, wait for its result."""
        return self.wait_for_result(self.wait_for_build(self.trigger(job, params, idempotency_key)))

    def follow(self, queue_url: str) -> BuildResult:
        """Resume an already triggered build from its queue item URL, without triggering again."""
        return self.wait_for_result(self.wait_for_build(QueuedBuild(None, self._own(queue_url))))

    def trigger(self, job: str, params: Mapping[str, str], idempotency_key: str | None = None) -> QueuedBuild:
        """Queue a build of `job` (`folder/name` for a job in a folder) with `params` as form fields; the key
        is sent as the `idempotency_param` build parameter when the config names one, else not at all."""
        url = self._base + job_path(job) + "buildWithParameters"
        body = urlencode(self._form(params, idempotency_key)).encode()
        response, attempts = self._post_form(url, body)
        if _crumb_missing(response):  # first time, or the session behind the kept crumb expired
            self._crumb = self._fetch_crumb()
            response, attempts = self._post_form(url, body)
        self._check(response, attempts, f"Jenkins job {job!r}")
        location = response.headers.get("location", "")
        if "/queue/item/" not in location:
            raise ConnectorError(f"Jenkins took the build of {job!r} (HTTP {response.status_code}) but named no "
                                 f"queue item (Location: {location!r}): it may run, but cannot be followed")
        return QueuedBuild(job, self._own(location))

    def wait_for_build(self, queued: QueuedBuild) -> BuildRef:
        label = f"Jenkins queue item {queued.queue_url}" + (f" (job {queued.job!r})" if queued.job else "")
        item = self._poll(queued.queue_url, "?tree=id,why,cancelled,executable[number,url]",
                          self.config.queue_timeout_s, label, "started no build", _left_queue)
        if item.get("cancelled"):
            raise ActionCancelled(f"{label} was cancelled before its build started", queued.queue_url)
        url = self._own(item["executable"]["url"])
        return BuildRef(self._job_of(url), int(item["executable"]["number"]), url)

    def wait_for_result(self, build: BuildRef) -> BuildResult:
        label = f"Jenkins build {build.job!r} #{build.number}"
        state = self._poll(build.url, "?tree=number,url,building,result,duration", self.config.build_timeout_s,
                           label, "did not finish", _finished)
        if state["result"] not in _OUTCOMES:
            raise ConnectorError(f"{label} ended with an unknown result {state['result']!r}")
        return BuildResult(build, state["result"], float(state.get("duration") or 0) / 1000)

    def _poll(self, url: str, query: str, timeout_s: float, label: str, failing: str,
              done: Callable[[dict], bool]) -> dict:
        """GET `url`api/json every poll_interval_s until `done`; ActionTimeout after timeout_s."""
        deadline = self.clock() + timeout_s
        while True:
            state = self._get_json(url + "api/json" + query, label)
            if done(state):
                return state
            left = deadline - self.clock()
            if left <= 0:
                why = f" (Jenkins: {state['why']})" if state.get("why") else ""
                raise ActionTimeout(f"{label} {failing} within {timeout_s:g} s{why}; it may still run: follow {url}",
                                    url)
            self.sleep(min(self.config.poll_interval_s, left))

    def _get_json(self, url: str, label: str) -> dict:
        response, attempts = self._request("GET", url, self._headers, handled=_HANDLED)
        self._check(response, attempts, label)
        try:
            data = response.json()
        except ValueError as exc:
            raise ConnectorError(f"{label}: Jenkins answered {url} with something that is not JSON") from exc
        if not isinstance(data, dict):
            raise ConnectorError(f"{label}: Jenkins answered {url} with JSON that is not an object")
        return data

    def _post_form(self, url: str, body: bytes) -> tuple[httpx.Response, int]:
        def headers() -> dict[str, str]:
            return {**self._headers(), "Content-Type": "application/x-www-form-urlencoded"}

        return self._request("POST", url, headers, body, handled=_HANDLED)

    def _fetch_crumb(self) -> dict[str, str]:
        url = self._base + "/crumbIssuer/api/json"
        response, attempts = self._request("GET", url, self._headers, handled=_HANDLED)
        self._check(response, attempts, "Jenkins' crumb issuer (Jenkins asked for a crumb)")
        try:
            issued = response.json()
            return {str(issued["crumbRequestField"]): str(issued["crumb"])}
        except (ValueError, KeyError, TypeError) as exc:
            raise ConnectorError(f"Jenkins' crumb issuer answered {url} without crumbRequestField and crumb") from exc

    def _check(self, response: httpx.Response, attempts: int, label: str) -> None:
        status = response.status_code
        if status == 401:
            raise PermanentDeliveryError(
                f"Jenkins refused the credentials of user {self.config.user!r} (HTTP 401): check user and api_token",
                attempts, status)
        if status == 403:
            reason = "no valid crumb, even a fresh one" if _crumb_missing(response) else "the user lacks a permission"
            raise PermanentDeliveryError(
                f"Jenkins refused user {self.config.user!r} on {label} (HTTP 403, {reason}): {response.text[:200]}",
                attempts, status)
        if status == 404:
            raise PermanentDeliveryError(f"{label} not found (HTTP 404 for {response.request.url})", attempts, status)

    def _headers(self) -> dict[str, str]:
        pair = f"{self.config.user}:{self.config.api_token.get_secret_value()}".encode()
        return {"Authorization": f"Basic {base64.b64encode(pair).decode()}", "Accept": "application/json",
                **self._crumb}

    def _form(self, params: Mapping[str, str], idempotency_key: str | None) -> dict[str, str]:
        form = dict(params)
        name = self.config.idempotency_param
        if name is not None and idempotency_key is not None:
            if form.get(name, idempotency_key) != idempotency_key:
                raise ConfigurationError(f"build parameter {name!r} is the idempotency parameter: pass the key instead")
            form[name] = idempotency_key
        return form

    def _own(self, url: str) -> str:
        """A URL from Jenkins on the configured scheme and host, ending in '/'."""
        scheme, host, *_ = urlsplit(self._base)
        path = urlsplit(urljoin(self._base + "/", url)).path
        return urlunsplit((scheme, host, path.rstrip("/") + "/", "", ""))

    def _job_of(self, build_url: str) -> str:
        """`…/job/folder/job/name/35/` → `folder/name`."""
        parts = urlsplit(build_url).path[len(urlsplit(self._base).path):].strip("/").split("/")
        return "/".join(unquote(parts[i + 1]) for i in range(0, len(parts) - 1, 2) if parts[i] == "job")


def _left_queue(item: dict) -> bool:
    return bool(item.get("cancelled") or item.get("executable"))


def _finished(state: dict) -> bool:
    return state.get("building") is False and state.get("result") is not None


def _crumb_missing(response: httpx.Response) -> bool:
    return response.status_code == 403 and "crumb" in response.text.lower()
