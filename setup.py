"""Installs the rbm-music packages: common (CLI helpers), preprocess (Beam), trainer (TF), deploy.

Also the --setup_file that Dataflow workers install the pipeline code from:
install_requires is only what preprocessing imports, so workers do not
install TensorFlow (README, "Run on Google Cloud", has the sizes). Training,
evaluation and generation need the `trainer` extra:

    pip install -e '.[trainer]'          # what `make install` does, plus test,data
    pip install '.[trainer,gpu]'         # the training container
"""

import setuptools

setuptools.setup(
    name="rbm-music",
    version="0.1.0",
    description=("Learn to write music with a Restricted Boltzmann Machine: "
                 "Beam preprocessing, tf.distribute training, batch generation."),
    python_requires=">=3.10",
    # Not benchmarks/ nor tests/: they are run from a checkout.
    packages=setuptools.find_packages(include=["common*", "preprocess*", "trainer*",
                                               "deploy*"]),
    # The dated GCP machine/region tables deploy/specs.py checks against.
    package_data={"deploy": ["gcp_catalog.json"]},
    install_requires=[
        # TF 2.21 (the trainer extra) needs protobuf >= 6.31, which needs
        # Beam >= 2.69.
        "apache-beam[gcp]>=2.69,<3",
        "numpy>=1.26",
        "google-cloud-storage>=2.14,<4",
        "pretty_midi>=0.2.10,<0.3",
        "absl-py>=1.4",
    ],
    extras_require={
        "trainer": [
            "tensorflow>=2.21,<2.22",
            # tf.summary needs it; TF 2.21 no longer installs it by itself.
            "tensorboard>=2.20",
            # trainer.compare's figure (Agg backend, no display needed).
            "matplotlib>=3.7",
        ],
        "test": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100",
                 "gcp-storage-emulator>=2024.8", "ruff>=0.6"],
        # The demo corpus: Bach chorales shipped inside music21 (public domain).
        "data": ["music21>=9"],
        # With `trainer`: TensorFlow's own CUDA wheels (deploy/Dockerfile.trainer).
        "gpu": ["tensorflow[and-cuda]>=2.21,<2.22"],
        "vertex": ["google-cloud-aiplatform>=1.60"],
        # A real piano in the gallery: needs the system's libfluidsynth and a
        # GM sound font (apt-get install fluidsynth fluid-soundfont-gm);
        # without them the gallery falls back to sine tones.
        "audio": ["pyfluidsynth>=1.3"],
        # benchmarks/ only: the .mat piano-roll sets (scipy) and their metrics.
        "bench": ["scipy>=1.11", "scikit-learn>=1.4"],
    },
)
