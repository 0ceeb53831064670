"""TFRecord shards: the one record schema, the sharded writer and the legacy reader."""
