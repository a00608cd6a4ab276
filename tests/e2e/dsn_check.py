#!/usr/bin/python3
"""dsn_check.py - an RFC 3464 delivery report read with Python's email package.

For the end-to-end tests: check_dsn(data, expect) asserts that the bytes are
a multipart/report; report-type=delivery-status with the readable text/plain
part first and the message/delivery-status part second, checks the fields
expect names, and returns the per-recipient fields as dicts (lower-case
names, unfolded values).  dsn_fields(data) gives the per-message fields too.

By hand, on the reports tests/unit/test_dsn_build writes:
    mkdir /tmp/dsn && PG_DSN_OUT=/tmp/dsn ./tests/unit/test_dsn_build
    /usr/bin/python3 tests/e2e/dsn_check.py /tmp/dsn
"""
import email
import email.policy
import os
import re
import sys


def _unfold(value):
    return re.sub(r"\r?\n(?=[ \t])", "", str(value)).strip()


def _block(msg):
    return {name.lower(): _unfold(value) for name, value in msg.items()}


def dsn_fields(data):
    """(per-message dict, [per-recipient dict, ...], the report's Message)"""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", \
        "not multipart/report but %s" % msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", \
        "report-type is %r" % msg.get_param("report-type")
    parts = msg.get_payload()
    assert isinstance(parts, list) and len(parts) in (2, 3), "%d parts" % len(parts)
    assert parts[0].get_content_type() == "text/plain", \
        "part 1 is %s" % parts[0].get_content_type()
    assert parts[1].get_content_type() == "message/delivery-status", \
        "part 2 is %s" % parts[1].get_content_type()
    blocks = parts[1].get_payload()
    assert isinstance(blocks, list) and len(blocks) >= 2, \
        "the delivery-status part has %d field groups" % len(blocks)
    return _block(blocks[0]), [_block(b) for b in blocks[1:]], msg


def _match(where, got, want):
    for name, value in want.items():
        have = got.get(name.lower())
        assert have == value, "%s: %s is %r, wanted %r" % (where, name, have, value)


def check_dsn(data, expect=None):
    """Assert data is a delivery report; return its per-recipient fields.

    expect may hold "message" (fields of the per-message group), "recipients"
    (one dict of fields per recipient, in order: as many as the report has),
    "returned" ("message/rfc822", "text/rfc822-headers" or None for none) and
    "subject_prefix".  A field expected as None must be absent."""
    per_message, rcpts, msg = dsn_fields(data)
    expect = expect or {}
    assert "reporting-mta" in per_message, "no Reporting-MTA"
    for i, r in enumerate(rcpts):
        for name in ("final-recipient", "action", "status"):
            assert name in r, "recipient %d has no %s" % (i + 1, name)
    _match("per-message", per_message, expect.get("message", {}))
    if "recipients" in expect:
        assert len(rcpts) == len(expect["recipients"]), \
            "%d recipients, wanted %d" % (len(rcpts), len(expect["recipients"]))
        for i, (got, want) in enumerate(zip(rcpts, expect["recipients"])):
            _match("recipient %d" % (i + 1), got, want)
    if "returned" in expect:
        parts = msg.get_payload()
        kind = parts[2].get_content_type() if len(parts) == 3 else None
        assert kind == expect["returned"], "returned %r, wanted %r" % (kind, expect["returned"])
    if "subject_prefix" in expect:
        assert str(msg["Subject"]).startswith(expect["subject_prefix"]), msg["Subject"]
    assert msg["Auto-Submitted"] == "auto-replied", "Auto-Submitted: %r" % msg["Auto-Submitted"]
    return rcpts


# What tests/unit/test_dsn_build writes under $PG_DSN_OUT, and what each holds.
BUILT = {
    "dsn-one.eml": {
        "message": {"Original-Envelope-Id": "Q3+2Bfigures+3D1+20x",
                    "Reporting-MTA": "dns; gw.example.org",
                    "Arrival-Date": "Tue, 14 Nov 2023 22:13:20 +0000"},
        "recipients": [{"Original-Recipient": "rfc822; Bob@Example.org",
                        "Final-Recipient": "rfc822; bob@example.org",
                        "Action": "failed", "Status": "5.1.1",
                        "Remote-MTA": "dns; mx.example.org",
                        "Diagnostic-Code":
                            "smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected",
                        "Last-Attempt-Date": "Tue, 14 Nov 2023 22:30:00 +0000",
                        "Will-Retry-Until": None}],
        "returned": "text/rfc822-headers",
        "subject_prefix": "Undelivered Mail Returned to Sender",
    },
    "dsn-several.eml": {
        "message": {"Original-Envelope-Id": None, "Arrival-Date": None},
        "recipients": [
            {"Final-Recipient": "rfc822; bob@example.org", "Status": "5.1.1",
             "Diagnostic-Code":
                 "X-Postgate; Bob is not known at CORP/HQ (the legacy postoffice)"},
            {"Final-Recipient": "rfc822; carol@example.org", "Status": "5.3.4",
             "Diagnostic-Code": "X-Postgate; Nachricht zu gro\\x{00DF} f\\x{00FC}r das Postamt "
                 "\\x{005C}x{41} \\y"},
            {"Final-Recipient": "rfc822; dave@example.org", "Action": "delivered",
             "Status": "2.0.0", "Original-Recipient": "rfc822; dave@example.org"}],
        "returned": "message/rfc822",
    },
    "dsn-delayed.eml": {
        "message": {"Original-Envelope-Id": "abc"},
        "recipients": [{"Action": "delayed", "Status": "4.4.1",
                        "Will-Retry-Until": "Fri, 17 Nov 2023 22:13:20 +0000"}],
        "returned": None,
        "subject_prefix": "Delayed Mail",
    },
}


def main(argv):
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        print("usage: dsn_check.py DIR (the PG_DSN_OUT of tests/unit/test_dsn_build)",
              file=sys.stderr)
        return 2
    passed = failed = 0
    for name, expect in sorted(BUILT.items()):
        try:
            with open(os.path.join(argv[1], name), "rb") as f:
                check_dsn(f.read(), expect)
            passed += 1
            print("ok %s" % name)
        except (AssertionError, OSError) as e:
            failed += 1
            print("FAIL %s: %s" % (name, e))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
