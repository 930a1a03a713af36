"""Segment presets: the S3 destination's archive and the warehouse schema (events, users,
orders). See `presets.py`."""

from __future__ import annotations

from typing import Any

# the Order Completed per-event table: the ecommerce spec's slug, and the docs' example name
ORDER_TABLES = ("order_completed", "completed_order")

SEGMENT: dict[str, dict[str, Any]] = {
    # Segment AWS S3 destination: "Segment stores logs as gzipped, newline-separated JSON
    # containing the full call information", under segment-logs/{source-id}/{received-day}/.
    # https://segment.com/docs/connections/storage/catalog/aws-s3/
    # (segmentio/segment-docs src/connections/storage/catalog/aws-s3/index.md)
    # The calls follow the Segment spec (messageId, type, userId, anonymousId, timestamp,
    # receivedAt, properties / traits, context): the contract's own names, so no column rules;
    # `screen` calls become `page` (activity), identify `traits` are kept as properties.
    "segment_s3": {
        "table": "events",
        "files": ["segment-logs/**"],
        "format": "jsonl",
        # the received-day folder (epoch ms, UTC) is the partition, like a dt= folder, so a
        # daily run reads one day's files; events dated long before it are outside_late_window
        "partition_folder": "epoch_ms",
    },
    # Segment warehouse schema (tracks, identifies, pages, screens; exported to CSV/parquet):
    # `id` is the messageId, `event_text` the event name, `name` the page/screen name, nested
    # context flattened to context_<key>, identify traits and track properties as top-level
    # columns. The table is named by the file (tracks.csv, identifies.csv, ...).
    # https://segment.com/docs/connections/storage/warehouses/schema/
    # (segmentio/segment-docs src/connections/storage/warehouses/schema.md)
    # "For `track` calls, each event ... also has its own table" (<source>.<event_slug>, e.g.
    # order_completed) holding the same calls as `tracks` plus their properties: events are
    # read once, from `tracks`; every other table under segment-warehouse/ is claimed and left
    # unread with its reason (the Order Completed table blocks: it holds revenue, read by the
    # `segment_warehouse_orders` preset).
    "segment_warehouse": {
        "table": "events",
        "files": [
            "segment-warehouse/**/*tracks*",
            "segment-warehouse/**/*identifies*",
            "segment-warehouse/**/*pages*",
            "segment-warehouse/**/*screens*",
        ],
        "unread": {
            "segment-warehouse/**": "not a table this preset reads (tracks, identifies, pages, "
            "screens): a per-event table repeats the track calls of `tracks` (read from there); "
            "users, groups and aliases are not events (users: preset segment_warehouse_users)",
            **{
                f"segment-warehouse/**/*{slug}*": {
                    "reason": "Segment's Order Completed table holds the orders' revenue: add "
                    "`billing_invoices: {preset: segment_warehouse_orders}` to sources.yml to "
                    "load it as paid invoices (or `ignore:` it when billing comes from elsewhere)",
                    "block": True,
                }
                for slug in ORDER_TABLES
            },
        },
        "columns": {
            "message_id": "id",
            "type": {
                "file_name": {
                    "*tracks*": "track",
                    "*identifies*": "identify",
                    "*pages*": "page",
                    "*screens*": "page",
                }
            },
            "event": ["event_text", "name", "event"],
            "user_id": "user_id",
            "anonymous_id": "anonymous_id",
            "timestamp": ["timestamp", "original_timestamp"],
            "received_at": "received_at",
            "properties": {
                "rest": {
                    "exclude": [
                        "id",
                        "event",
                        "event_text",
                        "name",
                        "user_id",
                        "anonymous_id",
                        "timestamp",
                        "original_timestamp",
                        "received_at",
                        "sent_at",
                        "uuid",
                        "uuid_ts",
                        "loaded_at",
                    ],
                    "exclude_prefixes": ["context_"],
                }
            },
            "context": {"prefix": "context_"},
        },
    },
    # Segment warehouse `users` table: one row per user_id (`id` = identifies.user_id), traits as
    # columns, no anonymous_id. Same page as above.
    "segment_warehouse_users": {
        "table": "crm_contacts",
        "files": ["segment-warehouse/**/*users*"],
        "columns": {
            "user_id": "id",
            "email": "email",
            "signup_at": ["created_at", "signup_at"],
            "company": ["company", "company_name"],
            "industry": "industry",
            "company_size": {"from": ["company_size", "employees"], "size_bucket": True},
            "country": "country",
            "role": ["role", "title"],
            "plan": {"from": "plan", "case": "lower"},
            "acquisition_channel": ["acquisition_channel", "source"],
            "updated_at": ["received_at", "uuid_ts"],
        },
    },
    # Segment warehouse Order Completed table (ecommerce spec v2 "Order Completed": order_id,
    # total, revenue, currency, ...; https://segment.com/docs/connections/spec/ecommerce/v2/),
    # one row per completed order: a paid invoice dated by the call's timestamp. amount =
    # `revenue` (the spec: "excluding shipping and tax"), else `total`; currency
    # defaults to USD when the call has none (the spec's examples). Orders without a user_id
    # (guest checkouts) are quarantined as null_key.
    "segment_warehouse_orders": {
        "table": "billing_invoices",
        "files": [f"segment-warehouse/**/*{slug}*" for slug in ORDER_TABLES],
        "columns": {
            "invoice_id": ["order_id", "id"],
            "user_id": "user_id",
            "amount": ["revenue", "total"],
            "currency": {"from": "currency", "case": "upper", "default": "USD"},
            "status": {"const": "paid"},
            "period_start": "timestamp",
            "period_end": "timestamp",
            "paid_at": "timestamp",
        },
    },
}
