"""The Microsoft Teams adapter (Bot Framework): commands, Adaptive Cards, approvals,
proactive messages. Every botbuilder / botframework import in the project lives in this
package, so the SDK (archived in favour of the Microsoft 365 Agents SDK) can be swapped
without touching the core or a test: tests speak the wire protocol only.
"""
