"""Personal columns as a specification: every usual spelling of a personal column is
dropped or hashed in development, production refuses any column nobody declared,
and no personal value reaches the lake, its quarantine or a message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import polars as pl
import pytest
from omegaconf import DictConfig, OmegaConf

from recsys_cli.config import DEFAULT_CONF_DIR
from recsys_cli.data.personal import PersonalPolicy, classify, compile_rules, policy_from_config, words
from recsys_cli.errors import ConfigError, PersonalDataError
from recsys_cli.tasks.ingest import run
from tests.conftest import GOOD_ROWS

Cfg = Callable[..., DictConfig]
Writer = Callable[..., Path]
STRONG_KEY = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def pii_config(name: str = "development") -> dict[str, Any]:
    """The shipped pii group, read as a plain mapping (production on top of development)."""
    layers = [OmegaConf.load(Path(DEFAULT_CONF_DIR) / "pii" / f"{n}.yaml") for n in ("development", name)]
    merged = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.merge(*layers)))
    merged.pop("defaults", None)
    return merged


DEV = policy_from_config(pii_config())

# fmt: off
DROPPED = [
    # e-mail
    "email", "Email", "EMAIL", "e-mail", "E-Mail", "E-Mail Address", "EMAIL_ADDRESS", "emailAddress",
    "user_email", "userEmail", "CustomerEmail", "customer.email", "work email", "mail", "email_addr", "e_mail",
    # telephone
    "phone", "Phone", "phone_number", "PhoneNumber", "phoneNo", "phone-nr", "mobile", "Mobile Number", "tel",
    "Tel.", "telephone", "Telephone_No", "cell_phone", "cellPhone", "fax", "msisdn", "Téléphone",
    # names
    "first_name", "FirstName", "firstname", "last_name", "lastName", "full_name", "Full Name", "surname",
    "given_name", "family-name", "customer_name", "username", "fname", "lname",
    # address
    "address", "Address", "street", "street_address", "StreetAddress", "address_line_1", "addressLine2",
    "billing_address", "house_number", "postcode", "post_code", "postal_code", "PostalCode", "zip", "ZIP",
    "zip_code", "zipCode", "zipcode",
    # birth, national and payment ids
    "birth_date", "birthdate", "BirthDate", "date_of_birth", "DateOfBirth", "dob", "DOB", "birthday",
    "ssn", "SSN", "social_security_number", "national_id", "tax_id", "passport", "passport_number",
    "PassportNo", "drivers_license", "credit_card", "CreditCardNumber", "card_number", "cc_number", "cvv",
    "iban", "IBAN", "bank_account", "account_number",
    # location and credentials
    "latitude", "longitude", "Latitude", "lat", "lng", "lon", "geo_location", "gps", "password",
]
HASHED = [
    "ip", "IP", "ip_address", "IPAddress", "ipAddress", "IP_ADDR", "ipv4", "IPv4", "ipv6", "ip-v6", "client_ip",
    "remote_addr", "device_id", "deviceId", "DeviceID", "device-uuid", "cookie", "cookie_id", "CookieID",
    "mac_address", "idfa", "advertising_id", "imei",
]
KEPT = [
    "price", "category", "brand", "region", "gender", "age_bucket", "occupation", "title", "genres",
    "release_year", "stock", "available", "transaction_id", "hotel", "latency", "template", "description",
    "shipping_cost", "tip", "pipeline", "brand_name", "product_name", "category_name", "relationship",
    "telemetry", "skip", "dobby", "session_count",
]
# fmt: on


@pytest.mark.parametrize("column", DROPPED)
def test_personal_spellings_are_dropped(column: str) -> None:
    assert DEV.action(column, "events") == "drop", words(column)


@pytest.mark.parametrize("column", HASHED)
def test_identifier_spellings_are_hashed(column: str) -> None:
    assert DEV.action(column, "events") == "hash", words(column)


@pytest.mark.parametrize("column", KEPT)
def test_ordinary_columns_are_kept(column: str) -> None:
    assert DEV.action(column, "items") is None and DEV.action(column, "events") is None


def test_ordinary_user_attributes_are_kept() -> None:
    assert [DEV.action(c, "users") for c in ("region", "gender", "age_bucket", "occupation", "age")] == [None] * 5


def test_a_name_is_personal_in_the_users_table_only() -> None:
    assert DEV.action("name", "users") == "drop" and DEV.action("Name", "users") == "drop"
    assert DEV.action("name", "items") is None


def test_contract_columns_are_never_personal_columns() -> None:
    assert DEV.action("user_id", "events") is None and DEV.action("session_id", "events") is None
    assert DEV.action("signup_at", "users") is None


def test_the_longest_match_decides_and_drop_wins_a_tie() -> None:
    rules = compile_rules({"drop": ["addr(ess)?", "ip"], "hash": ["ip(_?addr(ess)?)?"]})
    assert classify("ip_address", rules) == "hash"  # an IP, not a postal address
    assert classify("ip", rules) == "drop"  # equally long: the stricter action
    assert classify("home_address", rules) == "drop"
    assert classify("zip", rules) is None


def test_names_are_compared_as_words() -> None:
    assert words("E-Mail Address") == "e_mail_address"
    assert words("userEmailAddress") == "user_email_address"
    assert words("IPAddress") == "ip_address"
    assert words("  Tel.  ") == "tel"


def test_exact_columns_and_safe_columns_override_the_patterns() -> None:
    config = pii_config()
    config["personal_columns"] = {"Loyalty Card": "hash", "Ip": "drop"}
    config["safe_columns"] = {"items": ["zip"]}
    policy = policy_from_config(config)
    assert policy.action("loyalty_card", "users") == "hash"
    assert policy.action("IP", "events") == "drop"
    assert policy.action("zip", "items") is None and policy.action("zip", "users") == "drop"


def test_a_plan_splits_a_table_into_drop_and_hash() -> None:
    plan = DEV.plan(["user_id", "Email", "phone_number", "E-Mail Address", "IP", "region"], "users", "users.csv")
    assert plan.drop == {"Email", "phone_number", "E-Mail Address"} and plan.hash == {"IP"}


def test_production_refuses_every_undeclared_column_naming_file_column_and_fix() -> None:
    prod = policy_from_config(pii_config("production"))
    assert prod.fail_closed
    for column in ("Email", "phone_number", "favourite_colour"):
        with pytest.raises(PersonalDataError) as raised:
            prod.plan(["user_id", "signup_at", column], "users", "raw/users.csv")
        message = str(raised.value)
        assert message.startswith("raw/users.csv: users column(s)") and f"'{column}'" in message
        assert "pii.safe_columns.users=[" in message and "\n" not in message
    with pytest.raises(PersonalDataError, match=r"'Email' looks personal \(drop\).*personal_columns.email=drop"):
        prod.plan(["user_id", "Email"], "users", "users.csv")


def test_production_accepts_declared_columns() -> None:
    config = pii_config("production")
    config["safe_columns"] = {"users": ["Favourite Colour"]}
    config["personal_columns"] = {"email": "drop", "ip_address": "hash"}
    prod = policy_from_config(config)
    plan = prod.plan(["user_id", "favourite_colour", "Email", "IP-Address"], "users", "users.csv")
    assert plan.drop == {"Email"} and plan.hash == {"IP-Address"}
    # nothing is guessed in production: a declared-safe column stays, whatever it looks like
    assert PersonalPolicy(fail_closed=True, safe={"users": frozenset({"zip"})}).action("zip", "users") is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("personal_columns", {"email": "encrypt"}, "must be 'drop' or 'hash'"),
        ("personal_patterns", {"mask": ["email"]}, "must be 'drop' or 'hash'"),
        ("personal_patterns", {"drop": ["e(mail"]}, "not a regular expression"),
        ("safe_columns", {"orders": ["x"]}, "unknown table"),
    ],
)
def test_bad_rules_are_config_errors(key: str, value: object, message: str) -> None:
    config = pii_config()
    config[key] = value
    with pytest.raises(ConfigError, match=message):
        policy_from_config(config)


# ---------------------------------------------------------------- through ingest

USERS_CSV = (
    "user_id,signup_at,Email,phone_number,E-Mail Address,IPAddress,region\n"
    "u1,2025-01-01T00:00:00Z,ann@private.example,+44-7700-900001,ann.work@private.example,10.1.2.3,north\n"
    "u2,2025-01-02T00:00:00Z,bob@private.example,+44-7700-900002,bob.work@private.example,10.1.2.4,south\n"
    "u2,2025-01-03T00:00:00Z,dup@private.example,+44-7700-900003,dup.work@private.example,10.1.2.5,south\n"
)
PERSONAL_VALUES = ["private.example", "+44-7700-9000", "10.1.2."]


def lake_text(lake: Path) -> str:
    """Every table of a lake (events, users, items, quarantine) as CSV text."""
    frames = [pl.read_parquet(p) for p in sorted(lake.rglob("*.parquet"))]
    return "\n".join(f.cast({c: pl.String for c in f.columns}, strict=False).write_csv() for f in frames)


def test_users_personal_columns_in_any_spelling_are_dropped_or_hashed(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, raw_dir: Path
) -> None:
    write_events(GOOD_ROWS)
    (raw_dir / "users.csv").write_text(USERS_CSV)
    run(ingest_cfg())
    users = pl.read_parquet(lake_dir / "users.parquet")
    assert set(users.columns) == {"user_id", "signup_at", "IPAddress", "region"}
    assert users["IPAddress"].str.len_chars().to_list() == [20, 20]  # keyed pseudonyms
    quarantined = pl.read_parquet(lake_dir / "quarantine")
    assert quarantined["reason"].to_list() == ["duplicate:user_id"]
    text = lake_text(lake_dir)
    assert not [v for v in PERSONAL_VALUES if v in text]


def test_event_columns_kept_or_not_are_dropped_when_personal(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path
) -> None:
    header = "user_id,item_id,event_type,ts,User-Email,Client IP\n"
    rows = [
        "u1,i1,view,2026-01-01T10:00:00Z,ann@private.example,10.1.2.3",
        "u2,i2,view,2026-01-01T11:00:00Z,bob@private.example,10.1.2.4",
        "u3,i3,teleport,2026-01-01T12:00:00Z,eve@private.example,10.1.2.5",  # quarantined
    ]
    write_events(rows, header=header)
    run(ingest_cfg("data.events.keep=[User-Email]", "validation.max_bad_fraction=0.5"))
    events = pl.read_parquet(lake_dir / "events", hive_partitioning=True)
    assert "User-Email" not in events.columns and events["Client IP"].str.len_chars().to_list() == [20, 20]
    quarantined = pl.read_parquet(lake_dir / "quarantine")
    assert quarantined["_line"].to_list() == [4] and not {"User-Email", "Client IP"} & set(quarantined.columns)
    assert not [v for v in PERSONAL_VALUES if v in lake_text(lake_dir)]


def test_production_refuses_an_undeclared_users_column_before_writing(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, raw_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECSYS_PII_KEY", STRONG_KEY)
    write_events(["u1,i1,view,2026-01-01T10:00:00Z,,,"], header="user_id,item_id,event_type,ts,price,quantity,x\n")
    (raw_dir / "users.csv").write_text("user_id,favourite_colour\nu1,teal\n")
    with pytest.raises(PersonalDataError, match=r"events column\(s\) 'x' not declared"):
        run(ingest_cfg("pii=production"))
    declared = ("pii=production", "pii.safe_columns.events=[x]")
    with pytest.raises(PersonalDataError, match=r"users.csv: users column\(s\) 'favourite_colour' not declared"):
        run(ingest_cfg(*declared))
    assert not (lake_dir / "manifest.json").exists()
    result = run(ingest_cfg(*declared, "pii.safe_columns.users=[favourite_colour]"))
    assert result.manifest["rows"]["users"] == 1 and not result.manifest["pii"]["development_key"]


def test_production_ingests_personal_columns_declared_for_drop_or_hash(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, raw_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECSYS_PII_KEY", STRONG_KEY)
    write_events(GOOD_ROWS)
    (raw_dir / "users.csv").write_text(USERS_CSV)
    declared = [
        "+pii.personal_columns.email=drop",
        "+pii.personal_columns.phone_number=drop",
        "+pii.personal_columns.e_mail_address=drop",
        "+pii.personal_columns.ip_address=hash",
        "pii.safe_columns.users=[region]",
    ]
    run(ingest_cfg("pii=production", *declared))
    users = pl.read_parquet(lake_dir / "users.parquet")
    assert set(users.columns) == {"user_id", "signup_at", "IPAddress", "region"}
    assert not [v for v in PERSONAL_VALUES if v in lake_text(lake_dir)]


# ---------------------------------------------------------------- every source


def test_the_synthetic_shop_keeps_no_email_phone_or_raw_ip(tmp_path: Path) -> None:
    from recsys_cli.config import build, compose

    cfg = compose("ingest", [f"paths.data_dir={tmp_path}", "data.generator.n_events=400", "data.generator.n_days=4"])
    build(cfg.data).generate()
    raw_ips = set(pl.read_csv(tmp_path / "raw" / "synth" / "events*.csv", infer_schema=False)["ip"].to_list())
    run(cfg)
    lake = tmp_path / "lake" / "synth"
    assert {"email", "phone"}.isdisjoint(pl.read_parquet(lake / "users.parquet").columns)
    ips = pl.read_parquet(lake / "events", hive_partitioning=True)["ip"]
    assert ips.str.len_chars().unique().to_list() == [20] and raw_ips.isdisjoint(ips.to_list())
    assert "@example.com" not in lake_text(lake)


def test_retailrocket_events_with_an_extra_personal_column_keep_none_of_it(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "retailrocket"
    raw.mkdir(parents=True)
    (raw / "events.csv").write_text(
        "timestamp,visitorid,event,itemid,transactionid,Visitor E-Mail\n"
        "1433221332117,257597,view,355908,,ann@private.example\n"
        "1433224214164,992329,addtocart,248676,,bob@private.example\n"
        "1433221999827,111016,wishlist,248676,,eve@private.example\n"
    )
    from recsys_cli.config import compose

    run(compose("ingest", ["data=retailrocket", f"paths.data_dir={tmp_path}", "validation.max_bad_fraction=0.5"]))
    lake = tmp_path / "lake" / "retailrocket"
    assert pl.read_parquet(lake / "quarantine")["reason"].to_list() == ["unknown_event_type"]
    assert "private.example" not in lake_text(lake)


def test_a_column_only_a_later_event_file_has_is_kept_or_hashed_not_lost(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path
) -> None:
    write_events(["u1,i1,view,2026-01-01T10:00:00Z"], name="events-1.csv", header="user_id,item_id,event_type,ts\n")
    write_events(
        ["u2,i2,view,2026-01-02T10:00:00Z,10.1.2.4,web"],
        name="events-2.csv",
        header="user_id,item_id,event_type,ts,Client IP,channel\n",
    )
    run(ingest_cfg("data.events.files=[events-*.csv]", "data.events.keep=[channel]"))
    events = pl.read_parquet(lake_dir / "events", hive_partitioning=True).sort("ts")
    assert events["channel"].to_list() == [None, "web"]
    assert events["Client IP"].null_count() == 1 and events["Client IP"].str.len_chars().to_list()[1] == 20
    assert not [v for v in PERSONAL_VALUES if v in lake_text(lake_dir)]
