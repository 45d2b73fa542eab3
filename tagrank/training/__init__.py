"""Training: one trainer for every method.

    trainer      the loop, the data (one dataset or a mixture), checkpoints and the saved model
    distributed  the same trainer across processes (torchrun)
    trials       the tuning scripts' trial log
"""
