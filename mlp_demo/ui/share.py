"""Share settings by link: the address bar holds every setting (sidebar.keep_link_current);
this section shows the link to copy, which inside an embedded page the address bar does not."""

from __future__ import annotations

import urllib.parse

import streamlit as st

from mlp_demo.server.links import NOT_SETTINGS


def share_section() -> None:
    st.subheader("Share settings by link")
    base = str(st.context.url or "").split("?")[0]
    query = urllib.parse.urlencode({k: st.query_params.get(k) for k in st.query_params.keys()
                                    if k not in NOT_SETTINGS})  # settings only: no class, no key
    st.caption("The address bar holds every setting in the sidebar. Copy this link to hand out "
               "\"try this\" settings; inside an embedded page (such as a Hugging Face Space), "
               "use this one, as the address bar shows the outer page.")
    st.code(f"{base}?{query}", language=None, wrap_lines=True)

