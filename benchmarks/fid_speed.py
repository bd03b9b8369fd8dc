"""Images/s of ArtShift's FID feature extraction vs pytorch-fid's, same images, threads, weights.

    python benchmarks/fid_speed.py --images 500 --threads 2

Both networks get the same seeded random weights (the standard ones cannot be downloaded
offline; speed does not depend on the values). Prints both rates and the ratio (target >= 1.0).
"""

import argparse
import time
from unittest import mock

import torch

from artshift.metrics.inception import FEATURE_DIM, build_inception, extract_features, random_state_dict


def rate(fn, images: torch.Tensor) -> float:
    """Images per second of ``fn(images)`` after a one-batch warm-up."""
    fn(images[:2])
    began = time.perf_counter()
    fn(images)
    return len(images) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", type=int, default=128, help="side of the input images (resized to 299)")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from pytorch_fid import inception as pytorch_fid_inception

    state = random_state_dict(0)
    with_fc = {**state, "fc.weight": torch.zeros(1008, FEATURE_DIM), "fc.bias": torch.zeros(1008)}
    with mock.patch.object(pytorch_fid_inception, "load_state_dict_from_url", return_value=with_fc):
        reference = pytorch_fid_inception.InceptionV3([3]).eval()
    ours = build_inception(state)
    images01 = torch.rand(args.images, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def theirs(x):
        return torch.cat([reference(x[i:i + args.batch])[0] for i in range(0, len(x), args.batch)])

    ref_rate = rate(theirs, images01)
    our_rate = rate(lambda x: extract_features(ours, x * 2 - 1, args.batch), images01)
    print(f"images={args.images} size={args.size} batch={args.batch} threads={args.threads}")
    print(f"pytorch-fid : {ref_rate:7.2f} images/s")
    print(f"artshift    : {our_rate:7.2f} images/s")
    print(f"ratio       : {our_rate / ref_rate:7.2f}x")


if __name__ == "__main__":
    main()
