"""Sends user feedback to a Sentry DSN the way an app using Sentry's Python SDK does: the SDK's
own client, envelope classes and transport (gzip, X-Sentry-Auth). bichito is the server here.

    python3 send_feedback.py DSN MESSAGE CONTACT_EMAIL [SCREENSHOT_PNG]

The screenshot goes in an `attachment` item beside the feedback. Also sends an error event
and a deprecated user_report item, as apps do; prints the feedback's event id.
"""

import sys
import uuid

import sentry_sdk
from sentry_sdk.envelope import Envelope, Item, PayloadRef


def main() -> None:
    dsn, message, email = sys.argv[1:4]
    screenshot = sys.argv[4] if len(sys.argv) > 4 else None
    sentry_sdk.init(dsn=dsn, release="shop@1.4.2", environment="production")
    sentry_sdk.set_user({"id": "user_42"})
    # An error first: a Sentry server takes it; bichito acknowledges and drops it.
    sentry_sdk.capture_message("Payment provider timed out")
    event_id = uuid.uuid4().hex
    feedback = {
        "event_id": event_id,
        "type": "feedback",
        "platform": "python",
        "level": "info",
        "release": "shop@1.4.2",
        "environment": "production",
        "contexts": {
            "feedback": {
                "message": message,
                "contact_email": email,
                "name": "Ana",
                "url": "https://shop.example/cart",
                "source": "python-script",
            }
        },
    }
    envelope = Envelope(headers={"event_id": event_id})
    envelope.add_item(Item(payload=PayloadRef(json=feedback), type="feedback"))
    if screenshot:
        envelope.add_item(
            Item(
                payload=PayloadRef(path=screenshot),
                type="attachment",
                filename="screenshot.png",
                content_type="image/png",
            )
        )
    envelope.add_item(
        Item(
            payload=PayloadRef(
                json={
                    "event_id": uuid.uuid4().hex,
                    "name": "Bea",
                    "email": "bea@example.com",
                    "comments": "The old report dialog still works",
                }
            ),
            type="user_report",
        )
    )
    client = sentry_sdk.get_client()
    client.transport.capture_envelope(envelope)
    # The same envelope again (a retry): still one bichito each.
    client.transport.capture_envelope(envelope)
    client.flush(timeout=10)
    print(event_id)


if __name__ == "__main__":
    main()
