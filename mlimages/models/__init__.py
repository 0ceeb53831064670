"""Models: the pre-activation ResNet (`resnet`) and the loader of the original TF1 checkpoints (`tf1_import`)."""
