"""From a raw video to THUMOS14-style two-stream I3D features.

``decode`` streams frames with PyAV (optional extra ``video``), ``preprocess`` resizes, scales and
crops them like the reference pipeline, ``flow`` computes optical flow (OpenCV, optional extra
``flow``), ``i3d`` is the Inception-v1 I3D network, and ``extract`` puts them together clip by clip.
"""
