"""Installs the rbm-music packages: common (CLI helpers), preprocess (Beam), trainer (TF), deploy.

Also the --setup_file that Dataflow workers install the pipeline code from.
"""

import setuptools

setuptools.setup(
    name="rbm-music",
    version="0.1.0",
    description=("Learn to write music with a Restricted Boltzmann Machine: "
                 "Beam preprocessing, tf.distribute training, batch generation."),
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["common*", "preprocess*", "trainer*",
                                               "deploy*"]),
    install_requires=[
        # TF 2.21 needs protobuf >= 6.31, which needs Beam >= 2.69.
        "tensorflow>=2.21,<2.22",
        "apache-beam[gcp]>=2.69,<3",
        "numpy>=1.26",
        "google-cloud-storage>=2.14,<4",
        "pretty_midi>=0.2.10,<0.3",
        "absl-py>=1.4",
        # tf.summary needs it; TF 2.21 no longer installs it by itself.
        "tensorboard>=2.20",
        # trainer.compare's figure (Agg backend, no display needed).
        "matplotlib>=3.7",
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6.100", "gcp-storage-emulator>=2024.8"],
        # The demo corpus: Bach chorales shipped inside music21 (public domain).
        "data": ["music21>=9"],
        "gpu": ["tensorflow[and-cuda]>=2.21,<2.22"],
        "vertex": ["google-cloud-aiplatform>=1.60"],
        # A real piano in the gallery: needs the system's libfluidsynth and a
        # GM sound font (apt-get install fluidsynth fluid-soundfont-gm);
        # without them the gallery falls back to sine tones.
        "audio": ["pyfluidsynth>=1.3"],
    },
)
