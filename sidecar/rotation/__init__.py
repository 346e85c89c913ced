"""Which credential answers a request, and what a provider's failure does to the pool.

Nothing is imported here, so a caller pays only for the module it names:

* :mod:`~sidecar.rotation.classify` and :mod:`~sidecar.rotation.resets` read a
  provider's answer (status, body, headers) into a :class:`~sidecar.rotation.classify.Failure`;
* :mod:`~sidecar.rotation.rules` decides, purely, over one provider's typed state;
* :mod:`~sidecar.rotation.placement` says where a newly saved credential goes;
* :mod:`~sidecar.rotation.keypool` applies the rules to the store: the only writer of
  credentials and rotation state;
* :mod:`~sidecar.rotation.failover` and :mod:`~sidecar.rotation.attempts` are one
  request's attempt loop and the error it ends with.
"""
