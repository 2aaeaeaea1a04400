"""The settings a call of the API may give as keyword arguments, as a type.

Its own module: building a TypedDict costs a few milliseconds, which every
run of the command line would pay; annotations name it, nothing runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict


class SettingValues(TypedDict, total=False):
    """The settings a call may give as keyword arguments (every one optional).

    Each is the config key of the same name (``smspipe config example``
    describes them), except ``sender``: the ``from`` key.
    """

    account_sid: str
    auth_token: str
    api_key: str
    api_secret: str
    sender: str
    messaging_service_sid: str
    status_callback: str
    api_url: str
    allow_insecure_http: bool
    timeout: float
    default_region: str
    allowed_countries: list[str]
    max_segments: int
    shop_name: str
    address: Literal["shipping", "billing"]
    templates: Mapping[str, Any]
    concurrency: int
    rate: float
    shared_rate: bool
    retries: int
    max_wait: float
    reconcile_grace: float
    run_lease: float
    quiet_hours: str | None
    quiet_hours_timezone: str | None
    max_per_recipient: str | None
