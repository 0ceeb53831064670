"""TFRecord shards: the one record schema (`schema`), the folder contract (`index`), the sharded
writer (`writer`), the builders from image shards (`build`, contract in `image_shard_format`) and
from ImageNet (`imagenet`), and the legacy reader (`legacy`)."""
