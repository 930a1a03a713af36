"""Vendor presets for `sources.yml`: one line (`preset: NAME`) maps a vendor's export to a raw
table; any field can be overridden next to it. Each preset cites the vendor page its shape comes
from; where the vendor does not document a detail (marked UNVERIFIED), the preset accepts the
usual spellings and the fixture under tests/fixtures/vendors/ pins what we assumed.

Column rules are described in `orchestration/sources/mappings.py`.
"""

from __future__ import annotations

from typing import Any

# Stripe's zero-decimal currencies are handled by `minor_units`; see load.ZERO_DECIMAL.

PRESETS: dict[str, dict[str, Any]] = {
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
    "segment_warehouse": {
        "table": "events",
        "files": [
            "segment-warehouse/**/*tracks*",
            "segment-warehouse/**/*identifies*",
            "segment-warehouse/**/*pages*",
            "segment-warehouse/**/*screens*",
        ],
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
    # HubSpot contacts CSV export (Contacts > Export, or POST /crm/v3/exports/export/async with
    # format CSV): https://developers.hubspot.com/docs/api/crm/exports ;
    # HubSpot shows datetimes in the account time zone (Settings > Account Defaults > Time Zone):
    # https://developers.hubspot.com/docs/faq/how-should-timestamps-be-formatted-for-hubspots-apis
    # -> set `time_zone:` to the portal's zone. Column labels (Record ID, Create Date, Last
    # Modified Date, Lifecycle Stage, ...) are UNVERIFIED (no vendor page lists them); the
    # internal names (hs_object_id, createdate, lastmodifieddate, lifecyclestage) are accepted too.
    # The CRM record id is not the product user id: match by email (identity) or declare a
    # column holding the product id (identity.external_id).
    "hubspot_contacts_csv": {
        "table": "crm_contacts",
        "files": ["hubspot/**"],
        "format": "csv",
        "identity": {"match_by": "email"},
        "columns": {
            "user_id": ["Record ID", "hs_object_id", "Contact ID"],
            "email": {"from": ["Email", "email"], "case": "lower"},
            "signup_at": {
                "from": ["Create Date", "createdate"],
                "format": ["iso", "%Y-%m-%d %H:%M"],
            },
            "company": ["Company Name", "company"],
            "industry": {"from": ["Industry", "industry"], "case": "lower"},
            "company_size": {"from": ["Number of Employees", "numemployees"], "size_bucket": True},
            "country": ["Country/Region", "country"],
            "role": ["Job Title", "jobtitle"],
            "acquisition_channel": {
                "from": ["Original Source", "hs_analytics_source"],
                "case": "lower",
            },
            # the lifecycle stage is HubSpot's commercial state: customers (and evangelists)
            # pay, opportunities are in a trial-like sale, everyone else is free. Stage labels
            # and internal values (https://knowledge.hubspot.com/records/use-lifecycle-stages)
            # are both accepted; a product's own plan property wins when the export has one.
            "plan": {
                "from": ["Plan", "plan", "Lifecycle Stage", "lifecyclestage"],
                "case": "lower",
                "map": {
                    "subscriber": "free",
                    "lead": "free",
                    "marketing qualified lead": "free",
                    "marketingqualifiedlead": "free",
                    "sales qualified lead": "free",
                    "salesqualifiedlead": "free",
                    "other": "free",
                    "opportunity": "trial",
                    "customer": "pro",
                    "evangelist": "pro",
                },
            },
            "updated_at": {
                "from": ["Last Modified Date", "lastmodifieddate"],
                "format": ["iso", "%Y-%m-%d %H:%M"],
            },
        },
    },
    # Salesforce contacts/leads CSV: Data Loader exports (API field names Id, Email, CreatedDate,
    # LastModifiedDate; datetimes yyyy-MM-ddTHH:mm:ss.SSS+/-HHmm or ...'Z'):
    # https://developer.salesforce.com/docs/atlas.en-us.dataLoader.meta/dataLoader/supported_data_types.htm
    # and report exports ("Details Only" CSV: column labels, dates as M/D/YYYY h:mm AM in the
    # user's zone, and footer lines after a blank line: report name, copyright, "Confidential
    # Information - Do Not Distribute", "Generated By ..."; UNVERIFIED, no vendor page lists
    # them). Footer lines are counted and reported, not loaded.
    "salesforce_contacts_csv": {
        "table": "crm_contacts",
        "files": ["salesforce/**"],
        "format": "csv",
        "csv": {"footer": "auto"},
        "identity": {"match_by": "email"},
        "columns": {
            "user_id": ["Id", "Contact ID", "Lead ID"],
            "email": {"from": ["Email"], "case": "lower"},
            "signup_at": {
                "from": ["CreatedDate", "Created Date"],
                "format": ["iso", "%Y-%m-%dT%H:%M:%S.%g%z", "%m/%d/%Y %I:%M %p", "%m/%d/%Y"],
            },
            "company": ["Account.Name", "Account Name", "Company"],
            "industry": {"from": ["Industry", "Account.Industry"], "case": "lower"},
            "company_size": {"from": ["NumberOfEmployees", "Employees"], "size_bucket": True},
            "country": ["MailingCountry", "Mailing Country", "Country"],
            "role": ["Title"],
            "acquisition_channel": {"from": ["LeadSource", "Lead Source"], "case": "lower"},
            "updated_at": {
                "from": ["LastModifiedDate", "Last Modified Date"],
                "format": ["iso", "%Y-%m-%dT%H:%M:%S.%g%z", "%m/%d/%Y %I:%M %p", "%m/%d/%Y"],
            },
        },
    },
    # Stripe invoices from the API (GET /v1/invoices: {"object": "list", "data": [...]}, or one
    # invoice object per line): `created`/`period_*`/`status_transitions.paid_at` are Unix epoch
    # seconds, amounts are integers in the currency's minor unit, `currency` is lower-case ISO,
    # `status` is draft/open/paid/uncollectible/void. https://docs.stripe.com/api/invoices/object
    # amount = amount_due (equals amount_paid once paid). Raw statuses stay within the contract:
    # draft -> open (not yet owed), uncollectible -> void (written off); neither is revenue.
    # user_id: metadata.user_id when the app stores it, else the Stripe customer (cus_...) matched
    # by customer_email to the product users.
    "stripe_invoices_api": {
        "table": "billing_invoices",
        "files": ["stripe/**"],
        "format": "json",
        "records_path": "data",
        "identity": {
            "match_by": "email",
            "email": "customer_email",
            "external_id": "$.metadata.user_id",
        },
        "columns": {
            "invoice_id": "id",
            "user_id": "customer",
            "amount": {"from": "amount_due", "minor_units": True},
            "currency": {"from": "currency", "case": "upper"},
            "status": {"from": "status", "map": {"draft": "open", "uncollectible": "void"}},
            "period_start": {"from": ["period_start", "created"], "format": "epoch_s"},
            "period_end": {"from": ["period_end", "created"], "format": "epoch_s"},
            # a paid invoice without status_transitions.paid_at (an export that dropped it)
            # is dated by its creation; the rows that took the fallback are counted
            "paid_at": {
                "from": "$.status_transitions.paid_at",
                "format": "epoch_s",
                "fallback": "created",
            },
        },
    },
    # Stripe Dashboard invoices CSV export (Billing > Invoices > Export): "export all of your
    # invoices, or a subset of them (as a CSV file)": https://docs.stripe.com/invoicing/dashboard
    # Column names, decimal major-unit amounts and "(UTC)" dates are UNVERIFIED (no Stripe page
    # lists them); both spellings seen in exports are accepted.
    "stripe_invoices_csv": {
        "table": "billing_invoices",
        "files": ["stripe/**"],
        "format": "csv",
        "identity": {"match_by": "email", "email": ["Customer Email"]},
        "columns": {
            "invoice_id": ["id", "Invoice ID", "Number"],
            "user_id": ["Customer", "Customer ID"],
            "amount": ["Amount Due", "Total"],
            "currency": {"from": "Currency", "case": "upper"},
            "status": {
                "from": "Status",
                "case": "lower",
                "map": {"draft": "open", "uncollectible": "void"},
            },
            "period_start": {
                "from": ["Period Start (UTC)", "Date (UTC)"],
                "format": ["iso", "%Y-%m-%d %H:%M"],
            },
            "period_end": {
                "from": ["Period End (UTC)", "Date (UTC)"],
                "format": ["iso", "%Y-%m-%d %H:%M"],
            },
            # exports without a paid-date column: a paid invoice is dated by the Dashboard's
            # invoice date (counted as a fallback in the load's metadata)
            "paid_at": {
                "from": ["Paid At (UTC)", "Paid At"],
                "format": ["iso", "%Y-%m-%d %H:%M"],
                "fallback": ["Date (UTC)", "Created (UTC)", "Period Start (UTC)"],
            },
        },
    },
}
