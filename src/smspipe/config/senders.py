"""Who a message is from: a sender and a messaging service, taken whole from one source.

Same precedence as every setting (flag > the document's ``from`` and
``parameters.twilio_messaging_service_sid`` > environment > config file); the
first source naming either decides both, so a flag's sender is never paired
with the config file's messaging service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from smspipe.config.precedence import DEFAULT

if TYPE_CHECKING:
    from smspipe.config.settings import Settings

SENDER_KEYS = ("from", "messaging_service_sid")


class SenderChoice(NamedTuple):
    """A sender, a messaging service SID, or both, and the source they came from."""

    sender: str | None
    messaging_service_sid: str | None
    #: "flag", "document", "environment", "config file (PATH)"
    source: str
    #: the kind of source (smspipe.config.precedence: FLAG, DOCUMENT, ENVIRONMENT, FILE)
    kind: str


def sender_choices(
    settings: Settings, document_sender: str | None = None, parameters: Mapping[str, Any] | None = None
) -> list[SenderChoice]:
    """Every source that names a sender or a messaging service, strongest first."""
    choices = []
    for layer in settings.layers(parameters, document_sender):
        if layer.kind == DEFAULT or not any(layer.holds(name) for name in SENDER_KEYS):
            continue
        sender, service = layer.get("from"), layer.get("messaging_service_sid")
        choices.append(
            SenderChoice(
                str(sender) if sender else None,
                str(service) if service else None,
                layer.origin("from") if layer.holds("from") else layer.origin("messaging_service_sid"),
                layer.kind,
            )
        )
    return choices


def resolve_sender(
    settings: Settings, document_sender: str | None = None, parameters: Mapping[str, Any] | None = None
) -> SenderChoice | None:
    """The sender of a document whose ``from`` is *document_sender* (None: no sender anywhere)."""
    choices = sender_choices(settings, document_sender, parameters)
    return choices[0] if choices else None
