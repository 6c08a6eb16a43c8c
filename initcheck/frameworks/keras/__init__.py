"""Keras 3 and TensorFlow support: loaders (``load``), layouts and fans (``layout``), layers by class
(``modules``), graph context (``graph``) and writers (``write``). Nothing here is imported by ``import
initcheck``; Keras itself is imported only when a Keras model is loaded or written."""
