"""TFRecord shards: the one record schema (`schema`), the folder contract (`index`), the sharded
writer (`writer`), the builders from image shards (`build`, contract in `image_shard_format`) and
from ImageNet (`imagenet`, its folder layout in `imagenet_layout`), and the legacy reader (`legacy`).

Only the modules that make or read records import TensorFlow; the image-shard contract and reader,
the ImageNet layout, `ordered_map` and `config` do not, so the dedup stage starts without it."""
