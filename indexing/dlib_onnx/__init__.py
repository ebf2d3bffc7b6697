"""dlib's ResNet face recognition weights as an ONNX graph.

``serialization`` reads dlib's primitives, ``architecture`` writes out the network type
the ``.dat`` was saved from, ``dat_reader`` turns the file into ``layers`` records,
``graph`` builds the ONNX model from them and ``cache`` keeps the built model, checked
by hash, in a directory the caller names.
"""
