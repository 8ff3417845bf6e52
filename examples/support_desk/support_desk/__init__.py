"""Support Desk: a help-desk benchmark plug-in for alma-engine where customers' account quirks recur."""

from support_desk.envs import SupportDesk, SupportDeskEnv

__all__ = ["SupportDesk", "SupportDeskEnv"]
__version__ = "0.1.0"
