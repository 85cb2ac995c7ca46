"""The frames' JPEG encoder: OpenCV and the PyAV fallback (the GPU device has no OpenCV) both give JPEGs of the frame."""
import numpy as np
import pytest

from emotag_core.serve.media import JpegEncoder


@pytest.mark.parametrize("opencv", [True, False])
def test_jpeg_encoder_paths_decode_to_the_frame(opencv):
    import cv2

    yy, xx = np.mgrid[:96, :80]
    frame = np.stack([yy * 2, xx * 3, np.full_like(yy, 90)], -1).astype(np.uint8)  # [96, 80, 3] RGB ramps
    enc = JpegEncoder(90)
    enc._cv2 = opencv
    data = enc(frame)
    assert data[:2] == b"\xff\xd8"
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]  # BGR -> RGB
    assert back.shape == frame.shape and np.abs(back.astype(int) - frame).mean() < 3
