"""The Jenkins action against the Jenkins emulator: trigger → queue → build → result, crumbs, errors,
retries, cancellation, timeouts (on a fake clock), folders, resuming after a crash, the job hook."""

from __future__ import annotations

import json
import random

import httpx
import pytest
from emulators.http_receiver import HttpReceiver
from emulators.jenkins import JenkinsEmulator, Job

from connectors import (
    ActionCancelled,
    ActionTimeout,
    ConfigurationError,
    JenkinsAction,
    JenkinsConfig,
    PermanentDeliveryError,
)
from connectors.jenkins import BuildRef, job_path

PARAMS = {"TARGET": "checkout", "ACTION": "restart"}


class FakeTime:
    """A clock that only moves when the connector sleeps, so waiting costs nothing."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def jenkins():
    with JenkinsEmulator() as emulator:
        yield emulator


def _action(emulator: JenkinsEmulator, **config) -> tuple[JenkinsAction, FakeTime]:
    time = FakeTime()
    settings = {"url": emulator.url, "user": emulator.user, "api_token": emulator.token, **config}
    return JenkinsAction(JenkinsConfig(**settings), sleep=time.sleep, clock=time.clock, rng=random.Random(0)), time


def _posts(emulator: JenkinsEmulator) -> list[str]:
    return [r.path for r in emulator.requests if r.method == "POST"]


def test_run_triggers_waits_in_the_queue_and_returns_success(jenkins):
    jenkins.jobs["remediate"] = Job(queue_polls=2, build_polls=3)
    action, time = _action(jenkins)
    params = dict(PARAMS)
    result = action.run("remediate", params)
    assert result.success and result.outcome == "SUCCESS" and result.duration_s == 1.5
    assert result.build == BuildRef("remediate", 1, jenkins.build_url("remediate", 1))
    assert time.slept == [2.0] * 5  # two queue polls waiting, three build polls building, poll_interval_s apart
    trigger = jenkins.requests[0]
    assert (trigger.method, trigger.path) == ("POST", "/job/remediate/buildWithParameters")
    assert trigger.body == b"TARGET=checkout&ACTION=restart"
    assert trigger.headers["content-type"] == "application/x-www-form-urlencoded"
    assert trigger.headers["authorization"].startswith("Basic ") and "jenkins-crumb" not in trigger.headers
    assert jenkins.builds[0].params == PARAMS and params == PARAMS  # the caller's dict is not changed


@pytest.mark.parametrize("outcome", ["FAILURE", "ABORTED", "UNSTABLE", "NOT_BUILT"])
def test_other_results_are_outcomes_that_are_not_a_success(jenkins, outcome):
    jenkins.jobs["remediate"] = Job(result=outcome)
    action, _ = _action(jenkins)
    result = action.run("remediate", PARAMS)
    assert result.outcome == outcome and not result.success


def test_a_crumb_is_fetched_when_jenkins_asks_for_one_and_kept(jenkins):
    jenkins.crumb_required = True
    action, _ = _action(jenkins)
    assert action.run("remediate", PARAMS).success
    assert action.run("remediate", PARAMS).success
    calls = [(r.method, r.path) for r in jenkins.requests if "?tree=" not in r.path]  # all but the polls
    assert calls == [("POST", "/job/remediate/buildWithParameters"), ("GET", "/crumbIssuer/api/json"),
                     ("POST", "/job/remediate/buildWithParameters"), ("POST", "/job/remediate/buildWithParameters")]
    accepted = [r for r in jenkins.requests if r.method == "POST"][1:]
    assert all(r.headers["jenkins-crumb"] and r.headers["cookie"].startswith("JSESSIONID.") for r in accepted)
    assert [b.number for b in jenkins.builds] == [1, 2]


def test_wrong_credentials_are_refused_for_good(jenkins):
    action, time = _action(jenkins, api_token="not-the-token")
    with pytest.raises(PermanentDeliveryError, match="refused the credentials of user 'aiops'") as err:
        action.run("remediate", PARAMS)
    assert (err.value.status, err.value.attempts) == (401, 1) and len(jenkins.requests) == 1 and time.slept == []
    assert "not-the-token" not in str(err.value)


def test_an_unknown_job_is_not_found_for_good(jenkins):
    action, time = _action(jenkins)
    with pytest.raises(PermanentDeliveryError, match="Jenkins job 'nope' not found") as err:
        action.trigger("nope", PARAMS)
    assert err.value.status == 404 and len(jenkins.requests) == 1 and time.slept == []


def test_server_errors_are_retried_on_trigger_and_on_polls(jenkins):
    jenkins.faults = [(503, {}), (429, {"Retry-After": "3"})]
    action, time = _action(jenkins)
    queued = action.trigger("remediate", PARAMS)
    assert _posts(jenkins) == ["/job/remediate/buildWithParameters"] * 3 and time.slept[1] == 3.0
    jenkins.faults = [(502, {})]
    build = action.wait_for_build(queued)
    assert action.wait_for_result(build).success and len(jenkins.builds) == 1


def test_a_cancelled_queue_item_is_an_error_naming_it(jenkins):
    jenkins.jobs["remediate"] = Job(queue_polls=1)
    action, _ = _action(jenkins)
    queued = action.trigger("remediate", PARAMS)
    assert jenkins.cancel(1)
    with pytest.raises(ActionCancelled, match="cancelled before its build started") as err:
        action.wait_for_build(queued)
    assert err.value.url == queued.queue_url == jenkins.queue_url(1)
    assert jenkins.builds[0].number is None


def test_queue_timeout_says_why_jenkins_waits(jenkins):
    jenkins.jobs["remediate"] = Job(queue_polls=1000)
    action, time = _action(jenkins, queue_timeout_s=10)
    with pytest.raises(ActionTimeout, match=r"started no build within 10 s \(Jenkins: Waiting for next") as err:
        action.run("remediate", PARAMS)
    assert err.value.url == jenkins.queue_url(1) and sum(time.slept) == 10 and jenkins.builds[0].queue_polls == 6


def test_build_timeout_then_the_build_can_still_be_followed(jenkins):
    jenkins.jobs["remediate"] = Job(build_polls=1000)
    action, time = _action(jenkins, build_timeout_s=5, poll_interval_s=2)
    build = action.wait_for_build(action.trigger("remediate", PARAMS))
    with pytest.raises(ActionTimeout, match=r"'remediate' #1 did not finish within 5 s") as err:
        action.wait_for_result(build)
    assert err.value.url == build.url and time.slept[-3:] == [2.0, 2.0, 1.0]  # the last wait ends at the deadline
    jenkins.jobs["remediate"].build_polls = 0  # the build ends after all
    assert action.wait_for_result(build).success


def test_a_job_in_folders_is_addressed_by_job_segments_each_quoted():
    with JenkinsEmulator(jobs={"ops/team a/restart": Job()}) as jenkins:
        action, _ = _action(jenkins)
        result = action.run("ops/team a/restart", PARAMS)
    assert jenkins.requests[0].path == "/job/ops/job/team%20a/job/restart/buildWithParameters"
    assert result.build == BuildRef("ops/team a/restart", 1, jenkins.base + "/job/ops/job/team%20a/job/restart/1/")


def test_job_paths():
    assert job_path("remediate") == "/job/remediate/"
    assert job_path("/a/b c/") == "/job/a/job/b%20c/"
    assert job_path("x/y?z#") == "/job/x/job/y%3Fz%23/"
    for bad in ("", "/", "a//b"):
        with pytest.raises(ConfigurationError, match="not a Jenkins job path"):
            job_path(bad)


def test_follow_resumes_from_the_queue_url_without_triggering_again(jenkins):
    first, _ = _action(jenkins)
    queued = first.trigger("remediate", PARAMS)  # … and the process dies here, with queued.queue_url persisted
    restarted, _ = _action(jenkins)
    result = restarted.follow(queued.queue_url)
    assert result.success and result.build.job == "remediate" and len(_posts(jenkins)) == 1


def test_urls_from_jenkins_are_followed_on_the_configured_host_only(jenkins):
    action, _ = _action(jenkins)
    action.trigger("remediate", PARAMS)
    # Jenkins' root URL setting may name another host; the credentials stay with the configured one
    assert action.follow("https://jenkins.example.com/queue/item/1").success


def test_a_queue_item_jenkins_forgot_is_not_found(jenkins):
    action, _ = _action(jenkins)
    with pytest.raises(PermanentDeliveryError, match=r"queue item .*/queue/item/9/ not found"):
        action.follow(jenkins.queue_url(9))


def test_idempotency_key_is_a_build_parameter_only_when_configured(jenkins):
    jenkins.jobs["remediate"] = Job(parameters=("TARGET", "ACTION", "AIOPS_EXECUTION"))
    plain, _ = _action(jenkins)
    plain.trigger("remediate", PARAMS, idempotency_key="exec-1")
    keyed, _ = _action(jenkins, idempotency_param="AIOPS_EXECUTION")
    keyed.trigger("remediate", PARAMS, idempotency_key="exec-2")
    assert [b.params for b in jenkins.builds] == [PARAMS, {**PARAMS, "AIOPS_EXECUTION": "exec-2"}]
    with pytest.raises(ConfigurationError, match="'AIOPS_EXECUTION' is the idempotency parameter: pass the key"):
        keyed.trigger("remediate", {"AIOPS_EXECUTION": "other"}, idempotency_key="exec-3")


def test_a_repeated_trigger_of_a_waiting_build_lands_on_the_same_queue_item(jenkins):
    # e.g. the first answer was lost and the POST retried: Jenkins folds identical parameters into the waiting item
    action, _ = _action(jenkins, idempotency_param="AIOPS_EXECUTION")
    first = action.trigger("remediate", PARAMS, idempotency_key="exec-1")
    assert action.trigger("remediate", PARAMS, idempotency_key="exec-1") == first
    assert action.trigger("remediate", PARAMS, idempotency_key="exec-2") != first
    assert [b.params["AIOPS_EXECUTION"] for b in jenkins.builds] == ["exec-1", "exec-2"]


def test_the_job_hook_gets_the_parameters_and_can_call_out():
    with HttpReceiver() as receiver:
        def post_params(params: dict[str, str]) -> None:  # what a demo job would do: call a service
            httpx.post(receiver.url + "/remediate", json=params, timeout=2).raise_for_status()

        with JenkinsEmulator(jobs={"remediate": Job(hook=post_params, parameters=("TARGET", "ACTION"))}) as jenkins:
            action, _ = _action(jenkins)
            assert action.run("remediate", {**PARAMS, "UNDEFINED": "dropped"}).success
    assert [(r.path, json.loads(r.body)) for r in receiver.requests] == [("/remediate", PARAMS)]


def test_a_hook_decides_the_result_or_fails_the_build():
    def broken(params: dict[str, str]) -> None:
        raise RuntimeError("restart refused")

    jobs = {"unstable": Job(hook=lambda params: "UNSTABLE"), "broken": Job(hook=broken)}
    with JenkinsEmulator(jobs=jobs) as jenkins:
        action, _ = _action(jenkins)
        assert action.run("unstable", {}).outcome == "UNSTABLE"
        assert action.run("broken", {}).outcome == "FAILURE"
    assert jenkins.builds[1].hook_error == "RuntimeError('restart refused')"


def test_config_is_strict():
    with pytest.raises(ValueError):
        JenkinsConfig(url="jenkins:8080", user="u", api_token="t")
    with pytest.raises(ValueError):
        JenkinsConfig(url="http://jenkins", user="u", api_token="t", poll_interval_s=0)
    with pytest.raises(ValueError):
        JenkinsConfig(url="http://jenkins", user="u", api_token="t", surprise=1)
    assert "s3cret" not in repr(JenkinsConfig(url="http://jenkins", user="u", api_token="s3cret"))
