"""Local emulators of the external systems aiops talks to (Jenkins, PagerDuty, Slack, any webhook receiver).

Real HTTP servers on loopback that speak each system's documented request and response shapes
(each module cites its source). The contract tests drive the connectors against them, and the demo
environment starts the Jenkins one so a runbook can run a real Jenkins-API job without a Jenkins.
"""
