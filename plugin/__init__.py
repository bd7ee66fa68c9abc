"""Adapters that make `.vae` a native format of other libraries.

pydub: ``vaelac.plugin.register()`` (idempotent; ``unregister()`` undoes it) makes
``AudioSegment.export(..., format="vae")`` and ``AudioSegment.from_file("x.vae")`` work
without ffmpeg. Importing this package changes nothing by itself.
"""

from .pydub import (export, from_vae, is_registered, mediainfo, pcm_to_segment, register,
                    segment_to_pcm, tags_of, unregister)

__all__ = ["register", "unregister", "is_registered", "export", "from_vae", "tags_of",
           "mediainfo", "segment_to_pcm", "pcm_to_segment"]
