"""EZQuant segmentation core: numpy/torch science, importable without Django."""
