"""JSON-lines log output for twistd --logger, and the state-change event helper."""

import io
import json
import os
import stat

from twisted.logger import ILogObserver, LogLevel, Logger, LogPublisher, capturedLogs
from twisted.python.failure import Failure

from tunrelay import logs
from tunrelay.logs import JSONLinesObserver, STATE_EVENTS, event_as_json, json_observer, log_state_change


def emit_through(observer):
    publisher = LogPublisher(observer)
    return Logger(namespace="tunrelay.test", observer=publisher)


def lines(stream):
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text[:-1].split("\n")]


def test_one_json_object_per_line_with_named_fields():
    stream = io.StringIO()
    log = emit_through(JSONLinesObserver(stream))
    log.warn("dropped ({reason}) from {peer}", reason="not_ip", peer="b", count=3)
    log.info("multi\nline {x}", x={"a": [1, 2]})
    first, second = lines(stream)
    assert first["message"] == "dropped (not_ip) from b"
    assert (first["level"], first["namespace"], first["reason"], first["peer"], first["count"]) == (
        "warn", "tunrelay.test", "not_ip", "b", 3)
    assert isinstance(first["time"], float)
    assert second["message"] == "multi\nline {'a': [1, 2]}" and second["x"] == {"a": [1, 2]}


def test_key_material_and_payloads_never_reach_the_output():
    secret = "c2VjcmV0IGtleSBtYXRlcmlhbCBmb3IgdGVzdGluZyE="
    stream = io.StringIO()
    log = emit_through(JSONLinesObserver(stream))
    log.info("loaded {private_key} for {peer}", private_key=secret, peer="b", preshared_key=secret,
             session_key=b"\x01" * 32, public_key="pub", payload=b"\x45" * 60)
    text = stream.getvalue()
    assert secret not in text and "\\u0001" not in text
    [record] = lines(stream)
    assert record["private_key"] == record["preshared_key"] == record["session_key"] == "<redacted>"
    assert record["message"] == "loaded {private_key} for {peer}"   # the template, never the value
    assert record["public_key"] == "pub"
    assert record["payload"] == "<60 bytes>"


def test_failures_carry_a_traceback_and_odd_values_do_not_break_a_line():
    stream = io.StringIO()
    log = emit_through(JSONLinesObserver(stream))
    try:
        1 / 0
    except ZeroDivisionError:
        log.failure("it broke", Failure(), thing=object(), ratio=float("nan"))
    [record] = lines(stream)
    assert record["level"] == "critical"
    assert "ZeroDivisionError" in record["traceback"]
    assert record["ratio"] == "nan" and record["thing"].startswith("<object")


def test_event_with_a_broken_format_still_becomes_a_line():
    text = event_as_json({"log_format": "{missing", "log_level": LogLevel.info, "log_time": 1.0})
    assert json.loads(text)["time"] == 1.0


def test_a_failing_stream_is_swallowed():
    class Full(io.StringIO):
        def write(self, text):
            raise OSError(28, "No space left on device")

    JSONLinesObserver(Full())({"log_format": "x", "log_level": LogLevel.info})


def test_factory_writes_to_the_file_named_by_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "relay.json"
    monkeypatch.setenv("TUNRELAY_JSON_LOG", str(path))
    observer = json_observer()
    assert ILogObserver.providedBy(observer)
    emit_through(observer).info("hello {peer}", peer="b")
    emit_through(observer).info("again")
    observer.stream.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [record["message"] for record in records] == ["hello b", "again"]
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o007 == 0


def test_factory_defaults_to_stdout(monkeypatch, capsys):
    monkeypatch.delenv("TUNRELAY_JSON_LOG", raising=False)
    emit_through(json_observer()).info("to stdout")
    assert json.loads(capsys.readouterr().out)["message"] == "to stdout"


def test_factory_name_is_importable_as_twistd_does():
    from twisted.python.reflect import namedAny

    assert namedAny("tunrelay.logs.json_observer") is json_observer


def test_state_change_events_have_stable_names_and_fields():
    with capturedLogs() as events:
        log_state_change("peer_up", "b", path="udp://192.0.2.2:5000")
        log_state_change("reconnect", "b", endpoint="tcp://192.0.2.2:5000", delay=2.25)
        log_state_change("teleported", "b")
    from twisted.logger import formatEvent

    assert [event["event"] for event in events] == ["peer_up", "reconnect", "teleported"]
    assert [formatEvent(event) for event in events] == [
        "peer b up via udp://192.0.2.2:5000", "peer b reconnecting to tcp://192.0.2.2:5000 in 2.2s",
        "peer b: teleported"]
    assert all(event["log_namespace"] == "tunrelay.state" and event["peer"] == "b" for event in events)
    assert set(STATE_EVENTS) == {"peer_up", "peer_down", "handshake", "rekey", "reconnect", "roaming", "endpoint"}


def test_state_change_json_line_names_the_event():
    stream = io.StringIO()
    log_state_change("roaming", "b", log=emit_through(JSONLinesObserver(stream)),
                     old_path="udp://192.0.2.2:5000", new_path="udp://198.51.100.7:5000")
    [record] = lines(stream)
    assert record["event"] == "roaming" and record["old_path"] == "udp://192.0.2.2:5000"
    assert record["message"] == "peer b moved from udp://192.0.2.2:5000 to udp://198.51.100.7:5000"


def test_module_documents_the_environment_variable():
    assert logs.JSON_LOG_ENV == "TUNRELAY_JSON_LOG" and "TUNRELAY_JSON_LOG" in logs.__doc__
