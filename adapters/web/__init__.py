from adapters.web.adapter import WebChatAdapter

__all__ = ["WebChatAdapter"]
