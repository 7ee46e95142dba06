"""A stand-in for the user's training script in the documentation's examples.

``greenprint run ... -- python train.py --lr 0.1`` (README, "Quickstart: the CLI") runs this:
half a second of arithmetic per epoch, printing the accuracy each epoch reached.
"""

import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--epochs", type=int, default=2)
args = parser.parse_args()

accuracy = 0.5
for epoch in range(args.epochs):
    started = time.perf_counter()
    while time.perf_counter() - started < 0.5:
        sum(i * i for i in range(10_000))
    accuracy += (1 - accuracy) * args.lr
    print(f"epoch {epoch}: accuracy {accuracy:.3f}")
