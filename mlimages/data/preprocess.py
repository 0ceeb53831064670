"""Pure tensor functions from encoded image bytes to model inputs.

Training crops decode only the pixels they keep: for JPEG, `tf.image.decode_and_crop_jpeg`
decodes just the sampled window, which is what makes random crops of multi-megapixel photos
cheap. Evaluation resizes the shorter side to ``size / crop_fraction`` and takes the centre
(256 -> 224, 342 -> 299 with the default 0.875). Pixels are scaled like the original release:
[0, 1], then ``(x - 0.5) * 2``, i.e. [-1, 1].
"""

from __future__ import annotations

import tensorflow as tf

# Bounding-box sampling of the original: the crop must cover at least 10% of the object (the whole image).
MIN_OBJECT_COVERED = 0.1
MAX_ATTEMPTS = 10
# DCT scales libjpeg decodes at directly
JPEG_RATIOS = (1, 2, 4, 8)


def scale_pixels(image: tf.Tensor) -> tf.Tensor:
    """uint8 or [0, 255] float pixels -> float32 in [-1, 1] (the original's input scaling)."""
    image = tf.cast(image, tf.float32) / 255.0
    return (image - 0.5) * 2.0


def sample_crop_window(shape: tf.Tensor, seed: tf.Tensor, area_range, aspect_range) -> tf.Tensor:
    """A random crop window ``[y, x, height, width]`` (int32) inside an image of `shape` (h, w, c).

    Args:
        shape: the image shape, at least (height, width).
        seed: int32/int64 tensor of shape (2,) for the stateless sampler (deterministic per seed).
        area_range: (min, max) fraction of the image area the crop covers.
        aspect_range: (min, max) width / height of the crop.
    """
    whole = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, shape=[1, 1, 4])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_size=shape,
        bounding_boxes=whole,
        seed=seed,
        min_object_covered=MIN_OBJECT_COVERED,
        aspect_ratio_range=aspect_range,
        area_range=area_range,
        max_attempts=MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def train_crop(image_bytes: tf.Tensor, seed: tf.Tensor, size: int, area_range=(0.7, 1.0),
               aspect_range=(0.75, 1.333), flip: bool = True) -> tf.Tensor:
    """Random-area, random-aspect crop resized to (size, size), randomly flipped, scaled to [-1, 1].

    JPEGs are decoded and cropped in one step, at a reduced DCT scale when the crop is at least
    twice the output size; other formats (PNG) are decoded whole first.

    Args:
        image_bytes: string scalar, encoded JPEG or PNG.
        seed: int tensor of shape (2,); the same seed gives the same crop and flip.
        size: output side in pixels.
        area_range: fraction of the image area kept (>= 0.7 for pretraining, 0.05-1 for finetuning).
        aspect_range: crop width / height range.
        flip: random horizontal flip.

    Returns:
        float32 tensor (size, size, 3).
    """
    seed = tf.cast(seed, tf.int64)
    crop_seed, flip_seed = seed, tf.stack([seed[1], seed[0] + 1])
    image = tf.cond(
        tf.io.is_jpeg(image_bytes),
        lambda: _fused_jpeg_crop(image_bytes, crop_seed, area_range, aspect_range, size),
        lambda: _decoded_crop(image_bytes, crop_seed, area_range, aspect_range),
    )
    image = tf.image.resize(image, [size, size], method="bilinear", antialias=False)  # (size, size, 3)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return scale_pixels(image)


def _fused_jpeg_crop(image_bytes, seed, area_range, aspect_range, size):
    """Decode only the crop window, at the smallest DCT scale (1, 1/2, 1/4, 1/8) still >= `size`.

    libjpeg can decode at a reduced scale almost for free (as Pillow's draft mode); a 224 px crop
    of a 12-megapixel photo then never materialises the full-resolution pixels.
    """
    window = sample_crop_window(tf.image.extract_jpeg_shape(image_bytes), seed, area_range, aspect_range)
    shorter = tf.minimum(window[2], window[3])
    halvings = tf.reduce_sum(tf.cast(shorter >= size * tf.constant(JPEG_RATIOS[1:]), tf.int32))

    def decode_at(ratio):
        # the window is given in the coordinates of the scaled image
        return lambda: tf.image.decode_and_crop_jpeg(
            image_bytes, window // ratio, channels=3, ratio=ratio, dct_method="INTEGER_FAST")

    return tf.switch_case(halvings, [decode_at(ratio) for ratio in JPEG_RATIOS])


def _decoded_crop(image_bytes, seed, area_range, aspect_range):
    image = decode_rgb(image_bytes)
    window = sample_crop_window(tf.shape(image), seed, area_range, aspect_range)
    return tf.image.crop_to_bounding_box(image, window[0], window[1], window[2], window[3])


def decode_rgb(image_bytes: tf.Tensor) -> tf.Tensor:
    """Decode JPEG/PNG bytes to uint8 (h, w, 3) with a static rank."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def eval_crop(image_bytes: tf.Tensor, size: int, crop_fraction: float = 0.875) -> tf.Tensor:
    """Resize the shorter side to ``round(size / crop_fraction)``, take the centre (size, size), scale.

    Returns:
        float32 tensor (size, size, 3) in [-1, 1].
    """
    image = decode_rgb(image_bytes)
    return scale_pixels(resize_and_center_crop(image, size, crop_fraction))


def resize_for_crop(image: tf.Tensor, size: int, crop_fraction: float = 0.875) -> tf.Tensor:
    """Shorter side to ``round(size / crop_fraction)`` (antialiased bilinear), no side below `size`.

    The one resize of the evaluation protocol, shared by the centre crop and the ten crops.
    """
    shorter = tf.cast(tf.round(size / crop_fraction), tf.float32)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    new_shape = tf.maximum(tf.cast(tf.round(shape * (shorter / tf.reduce_min(shape))), tf.int32), size)
    return tf.image.resize(image, new_shape, method="bilinear", antialias=True)  # (h', w', 3) float32


def resize_and_center_crop(image: tf.Tensor, size: int, crop_fraction: float = 0.875) -> tf.Tensor:
    """`resize_for_crop`, then the centre (size, size) crop."""
    resized = resize_for_crop(image, size, crop_fraction)
    top = (tf.shape(resized)[0] - size) // 2
    left = (tf.shape(resized)[1] - size) // 2
    return tf.image.crop_to_bounding_box(resized, top, left, size, size)  # (size, size, 3)


def ten_crops(image: tf.Tensor, size: int, crop_fraction: float) -> tf.Tensor:
    """(h, w, 3) uint8 -> (10, size, size, 3) float32: corners, centre, then their mirrors, scaled."""
    resized = resize_for_crop(image, size, crop_fraction)
    height, width = tf.shape(resized)[0], tf.shape(resized)[1]
    offsets = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size),
               ((height - size) // 2, (width - size) // 2)]
    crops = tf.stack([tf.image.crop_to_bounding_box(resized, y, x, size, size) for y, x in offsets])  # (5, size, size, 3)
    return scale_pixels(tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0))  # (10, size, size, 3)
