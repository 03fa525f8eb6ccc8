"""Merge device profiles of the same device (e.g. spaces profiled in separate runs or on two
identical boards in parallel) into one.

Only profiles with the same ``spec_id`` (hardware, runtime + version, provider, precision,
threads, batch, options) merge. The normalised figures of the source are rescaled to the
destination's canonical reference latencies (ratio × destination's canonical latency), so the
merged table has one scale. Rows already in the destination are kept as they are.
"""

from __future__ import annotations

import os
from dataclasses import replace

from hwnas.errors import ProfileError
from hwnas.profiles.profile import DeviceProfile
from hwnas.profiles.schema import TABLES, ProfileRow


def merge_profiles(dst: str | os.PathLike | DeviceProfile, src: str | os.PathLike | DeviceProfile) -> dict[str, int]:
    """Add ``src``'s rows and spaces to ``dst``; returns rows added per table."""
    dst = dst if isinstance(dst, DeviceProfile) else DeviceProfile.open(dst)
    src = src if isinstance(src, DeviceProfile) else DeviceProfile.open(src)
    if dst.device_id != src.device_id:
        raise ProfileError(f"Cannot merge '{src.root}' into '{dst.root}': they were measured on different device "
                           f"settings ({src.spec.to_dict()} vs {dst.spec.to_dict()}).")
    added = {}
    with dst.writing("merging"):
        canon = dst.reference_ms_by_name
        if not canon:
            dst.update_meta(reference=src.meta.get("reference", {}))
            canon = dst.reference_ms_by_name
        offset = len(dst.sessions)
        dst.update_meta(sessions=dst.sessions + [{**s, "id": s.get("id", 0) + offset, "merged_from": str(src.root)}
                                                 for s in src.sessions])
        for sp in src.spaces:
            dst.register_space(sp, src.space_settings(sp))
        for table in TABLES:
            df = src.ops_df() if table == "ops" else src.models_df()
            n = 0
            for rec in df.to_dict("records"):
                row = ProfileRow.from_record(table, {k: (None if _isna(v) else v) for k, v in rec.items()})
                lat = row.measurement.latency_on(canon) if row.measurement.ref is not None and \
                    row.measurement.ref.reference in canon else row.latency_ms
                n += int(dst.add_row(replace(row, latency_ms=lat, session=row.session + offset)))
            added[table] = n
    return added


def _isna(v) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(v)) if not isinstance(v, (list, dict, str)) else False
    except (TypeError, ValueError):
        return False
