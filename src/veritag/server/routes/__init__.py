"""The JSON API under ``/api/v1``, one router per resource; ``API_ROUTERS`` lists them in the
order the app includes them.

Every route but ``POST /login`` needs a user (see ``server.auth``); what each role may do:

==============================  ========================================================
route                           who
==============================  ========================================================
GET /me, /tokens; POST /tokens  anyone logged in (a token is always for oneself)
DELETE /tokens/{id}             its owner, or a global admin
GET  /projects                  anyone; lists only the projects they can see
POST /projects, POST /users     global admin
POST /users/{name}/unlock       global admin (clears a login lockout, see ``throttle``)
GET  /projects/{name}           a member (any role) or a global admin
POST .../members, .../tutors    admin of the project (global admins are admin everywhere)
POST .../work[...]              tutor member, who must also be a routing tutor of that name
                                (``/work``, ``/work/{lease}/submit|release|undo``)
GET  .../items/{id}             reviewer/admin: any item; tutor: only one leased to them now
GET  .../routing                reviewer or admin of the project
==============================  ========================================================

The project operations call the library function their ``veritag`` command calls:

========================================  ====================================  ===============
route                                     does what ``veritag ...`` does        who (in project)
========================================  ====================================  ===============
POST /projects/{name}/import              ``import`` of an uploaded file        admin
GET  /projects/{name}/export?format=      ``export``, as a download             reviewer, admin
GET  /projects/{name}/status              ``status NAME --json``                any member
POST /projects/{name}/resolve             ``resolve --project``, as a job (202) reviewer, admin
POST /projects/{name}/autolabel           ``autolabel``, as a job (202)         admin
POST /projects/{name}/automate            ``automate``, as a job (202)          admin
GET  /projects/{name}/queue               ``automate --queue-out``              reviewer, admin
GET  /projects/{name}/reports/quality     ``report`` (HTML page or JSON)        reviewer, admin
GET  /projects/{name}/reports/automation  ``audit`` (HTML page or JSON)         reviewer, admin
GET  /jobs/{job_id}                       where a job stands                    who started it
========================================  ====================================  ===============

A global admin is admin of every project and sees every job. Jobs run one at a time per
server process; their records are kept in the database, so any process answers a poll and a
restart keeps them (see ``server.jobs``).

The reviewer's queue and the dashboard's data (``server.review``), arena leaderboards
(``server.arena``) and the audit log (``server.audit``) have their routers beside this package;
``tests/server/test_authz.py`` checks every route against every role.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import auth, automation, data, jobs, projects, reports, tokens, tutors, users, work

__all__ = ["API_ROUTERS"]

API_ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    users.router,
    tokens.router,
    projects.router,
    tutors.router,
    work.router,
    data.router,
    automation.router,
    jobs.router,
    reports.router,
)
