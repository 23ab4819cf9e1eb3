"""Tracking parameters: the lint names them to the editor, and every output drops them."""

from __future__ import annotations

from urllib.parse import unquote_plus, urlsplit, urlunsplit

# Click identifiers and campaign tags that let a mailer or platform follow a reader.
PARAMETERS = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid", "yclid",
    "ysclid", "_hsenc", "_hsmi", "__hssc", "__hstc", "__hsfp", "hsctatracking", "mkt_tok", "igshid", "igsh",
    "twclid", "ttclid", "li_fat_id", "s_cid", "vero_id", "vero_conv", "oly_anon_id", "oly_enc_id",
    "_openstat", "wickedid", "rb_clickid", "ml_subscriber", "ml_subscriber_hash", "epik", "srsltid",
    "_branch_match_id", "sc_cid", "mbid", "cmpid", "spm",
})
PREFIXES = ("utm_", "pk_", "mtm_", "matomo_")


def is_tracking(key: str) -> bool:
    """Tell whether a query parameter name is a tracking parameter."""
    key = key.lower()
    return key in PARAMETERS or key.startswith(PREFIXES)


def strip_tracking(url: str) -> str:
    """Return the URL without tracking parameters, keeping every other parameter as written."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [p for p in parts.query.split("&") if not is_tracking(unquote_plus(p.split("=", 1)[0]))]
    if len(kept) == len(parts.query.split("&")):
        return url
    return urlunsplit(parts._replace(query="&".join(kept)))
