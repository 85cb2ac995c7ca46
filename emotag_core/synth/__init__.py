"""Synthetic talking-head corpus with known truth (DVC stage `synth@<id>`).

`speech` (espeak-ng phonemes and audio), `visemes` (phoneme -> mouth with coarticulation),
`render` (textured z-buffer rasteriser), `texture` (photo -> UV texture), `generator` (clips).
"""
