"""Product analytics presets: Mixpanel (raw export, Engage profiles) and Amplitude's export.
See `presets.py`."""

from __future__ import annotations

from typing import Any

ANALYTICS: dict[str, dict[str, Any]] = {
    # Mixpanel raw event export (GET /api/2.0/export): JSON lines
    # {"event": ..., "properties": {"time": <epoch seconds>, "distinct_id": ..., "$insert_id": ...,
    #  "$user_id"/"$device_id" (simplified ID merge), "mp_processing_time_ms": ...}}.
    # https://developer.mixpanel.com/reference/raw-event-export ;
    # https://docs.mixpanel.com/docs/export-methods ("time" is seconds unless time_in_ms=true).
    # Raw exports are not de-duplicated (dedupe key includes $insert_id): dbt staging dedupes on
    # message_id = $insert_id.
    "mixpanel_export": {
        "table": "events",
        "files": ["mixpanel/**"],
        "format": "jsonl",
        "columns": {
            "message_id": "$.properties.$insert_id",
            "type": {
                "from": "event",
                "map": {"$identify": "identify", "$mp_web_page_view": "page"},
                "default": "track",
            },
            "event": "event",
            "user_id": "$.properties.$user_id",
            "anonymous_id": ["$.properties.$device_id", "$.properties.distinct_id"],
            "timestamp": {"from": "$.properties.time", "format": "epoch_s"},
            "received_at": {"from": "$.properties.mp_processing_time_ms", "format": "epoch_ms"},
            "properties": "properties",
        },
    },
    # Mixpanel Engage API (POST /api/2.0/engage, "Query Profiles"): one JSON page per request,
    # {"page": 0, "page_size": 1000, "session_id": ..., "status": "ok", "total": n,
    #  "results": [{"$distinct_id": ..., "$properties": {"$email", "$created", "$last_seen",
    #  "$country_code", ...}}]}. https://developer.mixpanel.com/reference/engage-query
    # Profiles are contacts, never events: files under mixpanel/engage* are claimed here even
    # when `mixpanel_export` (mixpanel/**) is declared first (the more specific pattern wins).
    # `$created` / `$last_seen` are written without a zone (project time; UNVERIFIED): set
    # `time_zone:`.
    "mixpanel_engage": {
        "table": "crm_contacts",
        "files": ["mixpanel/engage*", "mixpanel/engage*/**"],
        "format": "json",
        "records_path": "results",
        "columns": {
            "user_id": "$distinct_id",
            "email": {"from": ["$.$properties.$email", "$.$properties.email"], "case": "lower"},
            "signup_at": {"from": "$.$properties.$created", "format": ["iso", "%Y-%m-%dT%H:%M:%S"]},
            "company": ["$.$properties.company", "$.$properties.$company"],
            "industry": "$.$properties.industry",
            "company_size": {"from": "$.$properties.company_size", "size_bucket": True},
            "country": "$.$properties.$country_code",
            "role": "$.$properties.role",
            "plan": {"from": "$.$properties.plan", "case": "lower"},
            "acquisition_channel": [
                "$.$properties.utm_source",
                "$.$properties.$initial_referring_domain",
            ],
            "updated_at": {
                "from": ["$.$properties.$last_seen", "$.$properties.$created"],
                "format": ["iso", "%Y-%m-%dT%H:%M:%S"],
            },
        },
    },
    # Amplitude Export API (GET /api/2/export): "a zipped archive of JSON files", one event JSON
    # object per line (inner files gzipped: {projectId}_{yyyy-MM-dd}_{H}#{n}.json.gz); fields
    # event_type, user_id, device_id, event_time ("UTC ISO-8601"), server_received_time,
    # $insert_id, uuid, event_properties, user_properties, platform, os_name, country.
    # https://amplitude.com/docs/apis/analytics/export
    # `$identify` rows (UNVERIFIED in the vendor docs) become identify calls.
    "amplitude_export": {
        "table": "events",
        "files": ["amplitude/**"],
        "format": "jsonl",
        "columns": {
            "message_id": ["$insert_id", "uuid"],
            # Amplitude's own autocaptured names: a page view is a page call (activity); the
            # others stay track events and, unless added to the tracking plan, are listed by
            # `segflow sources check` with their row counts and the fix
            "type": {
                "from": "event_type",
                "map": {"$identify": "identify", "[Amplitude] Page Viewed": "page"},
                "default": "track",
            },
            "event": "event_type",
            "user_id": "user_id",
            "anonymous_id": "device_id",
            "timestamp": {"from": "event_time", "format": ["iso", "%Y-%m-%d %H:%M:%S.%f"]},
            "received_at": {
                "from": "server_received_time",
                "format": ["iso", "%Y-%m-%d %H:%M:%S.%f"],
            },
            "properties": {"merge": ["event_properties", "user_properties"]},
        },
    },
}
