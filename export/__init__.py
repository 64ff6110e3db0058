"""Export published separation architectures (HT-Demucs, Open-Unmix) to the model contract.

``python -m stemserve.export NAME --checkpoint FILE`` — see ``export/README.md``.
"""
