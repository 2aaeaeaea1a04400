"""Floor loops: the least work a tool doing the same job could do.

``python bench/floors.py validate FILE`` reads SMS documents as NDJSON, runs a
compiled jsonschema validator and a phonenumbers parse on each and writes one
JSON line per document. ``python bench/floors.py translate FILE`` reads orders
as NDJSON and renders one precompiled Jinja2 template per order. smspipe's
throughput is reported as a ratio to these.
"""

from __future__ import annotations

import json
import sys


def floor_validate(path: str) -> None:
    import phonenumbers
    from jsonschema import Draft202012Validator

    from smspipe.sms import load_schema

    validator = Draft202012Validator(load_schema("sms"))
    out = sys.stdout
    e164 = phonenumbers.PhoneNumberFormat.E164
    with open(path, "rb") as stream:
        for line in stream:
            document = json.loads(line)
            sms = document.get("sms", document)
            valid = validator.is_valid(sms)
            number = phonenumbers.parse(sms["phone"], "US")
            valid = valid and phonenumbers.is_valid_number(number)
            out.write(json.dumps({"valid": valid, "phone": phonenumbers.format_number(number, e164)}) + "\n")


def floor_translate(path: str) -> None:
    from jinja2.sandbox import SandboxedEnvironment

    template = SandboxedEnvironment().from_string(
        "Hi {{ order.shipping_address.firstname }}, we received your order {{ order.id }}."
    )
    out = sys.stdout
    with open(path, "rb") as stream:
        for line in stream:
            order = json.loads(line)["order"]
            message = template.render(order=order)
            out.write(
                json.dumps(
                    {
                        "request_id": f"order:{order['id']}:{order['status']}",
                        "sms": {"phone": order["shipping_address"]["phone"], "message": message},
                    }
                )
                + "\n"
            )


if __name__ == "__main__":
    {"validate": floor_validate, "translate": floor_translate}[sys.argv[1]](sys.argv[2])
