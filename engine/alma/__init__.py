"""Interoperability with the official ALMA code: the converter behind ``python -m engine.import_alma``
(:mod:`~engine.alma.importer`), what it reads in an ALMA design (:mod:`~engine.alma.analysis`) and the
compatibility layer it writes into the result (:mod:`~engine.alma.shim`)."""
