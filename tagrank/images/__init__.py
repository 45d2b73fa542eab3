"""The image side: photos -> backbone features.

    photos        decoding photos safely, and finding them on disk
    efficientnet  EfficientNet-Lite built from its weights alone
    backbone      the pretrained CNN (and its ImageNet classifier)
    features      backbone features, extracted once and cached in Parquet
    datasets      dataset readers: photos and their tags, one adapter per layout
"""
