"""Webhook signatures follow Standard Webhooks (the specification's own example)."""

from stemserve.jobs.webhooks import headers, sign


def test_signature_matches_the_specification_example():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_headers_carry_id_timestamp_and_signature():
    found = headers("text secret", "job1.succeeded", b"{}", timestamp=1700000000)
    assert found["webhook-id"] == "job1.succeeded" and found["webhook-timestamp"] == "1700000000"
    assert found["webhook-signature"] == sign("text secret", "job1.succeeded", 1700000000, b"{}")
    assert "webhook-signature" not in headers("", "x", b"{}")
