"""The two writes of the feature store, used by training and by `passos-magicos materialize`."""

from __future__ import annotations

import pandas as pd

from passos_magicos.data.dataset import Dataset
from passos_magicos.feature_store.offline import read_offline, write_offline
from passos_magicos.feature_store.online import (
    FeatureSetMeta,
    OnlineStore,
    latest_cycle_per_student,
)
from passos_magicos.settings import Settings


def store_offline(settings: Settings, dataset: Dataset) -> pd.DataFrame:
    """Write the canonical table to the offline store and read it back: training uses what the
    store holds, so the store is the training set's source of truth."""
    write_offline(dataset.table, dataset.digest, settings.offline_store_dir)
    table, _ = read_offline(settings.offline_store_dir)
    return table


def materialize_online(settings: Settings, table: pd.DataFrame, digest: str) -> FeatureSetMeta:
    """The latest cycle of every student into the online store (no labels), atomically."""
    store = OnlineStore(settings.online_store_url)
    try:
        return store.materialize(latest_cycle_per_student(table), digest)
    finally:
        store.dispose()
