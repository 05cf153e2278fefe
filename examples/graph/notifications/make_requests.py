#!/usr/bin/env python3
"""Write the raw HTTP/1.1 requests Graph would POST to the webhook (*.http next to this script).

CRLF after the request line and each header, a blank CRLF line, then the body with no
trailing newline; Content-Length is the exact body byte count. Re-run with:

    python3 examples/graph/notifications/make_requests.py
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

CONTOSO = "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11"
FABRIKAM = "7f3e9c4d-0b6a-4e51-8d2c-5a1b9e8f6c22"
SUBSCRIPTION = "9c4e1f22-5b3d-4a8e-b7c6-0d1e2f3a4b5c"
CLIENT_STATE = "teams-sentinel-demo"
EXPIRES = "2026-11-29T18:23:45.9356913+00:00"

# callRecord ids (see ../callrecords/)
PEER_TO_PEER = "4f1a7c2e-8b3d-4e6a-9c1f-2d5e8a7b6c01"
GROUP_CALL = "8d2b6e4a-1c7f-4a3e-b5d9-6e0f1a2b3c02"
PSTN = "1e9c5a3b-7d2f-4b8e-a6c4-3f7d9e1b5c03"
GUEST_ANONYMOUS = "6b4d8f2a-3e1c-4d7b-8a9e-5c2f7b1d4e04"
ODDITIES = "c3a7e1f9-5b2d-4c8a-9e6f-1d4b7a3c8e05"
FORGED = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c06"  # no callRecord file: it must never be fetched

VALIDATION_QUERY = ("validationToken=Validation%3A%20Testing%20client%20application%20reachability"
                    "%20for%20subscription%20Request-Id%3A%203bc1e4a8-93b1-4b4f-9c3b-1f0c1f1e2d3c")


def change(call_id, change_type, odata_type="#Microsoft.Graph.callRecord", tenant=CONTOSO,
           client_state=CLIENT_STATE):
    return {
        "subscriptionId": SUBSCRIPTION,
        "subscriptionExpirationDateTime": EXPIRES,
        "changeType": change_type,
        "resource": "communications/callRecords/" + call_id,
        "resourceData": {
            "@odata.type": odata_type,
            "@odata.id": "communications/callRecords/" + call_id,
            "id": call_id,
        },
        "clientState": client_state,
        "tenantId": tenant,
    }


def change_2023(call_id, both):
    """A change notification as Graph sent them before and during its 2023 rename (Microsoft 365
    Developer Blog, "OData property changes to callRecords change notifications in Microsoft
    Graph"): resourceData named its type and id `oDataType` / `oDataId` (type in lower case);
    from 20 April 2023 to late October 2023 it carried those and `@odata.type` / `@odata.id`."""
    item = change(call_id, "created", odata_type="#Microsoft.Graph.callrecord")
    data = {"oDataType": "#microsoft.graph.callrecord", "oDataId": "communications/callRecords/" + call_id}
    if both:
        data.update(item["resourceData"])
    else:
        data["id"] = call_id
    item["resourceData"] = data
    return item


def lifecycle(event, expires=EXPIRES):
    return {
        "subscriptionId": SUBSCRIPTION,
        "subscriptionExpirationDateTime": expires,
        "tenantId": CONTOSO,
        "clientState": CLIENT_STATE,
        "lifecycleEvent": event,
    }


def request(path, content_type, body):
    data = body.encode("utf-8")
    head = (
        "POST %s HTTP/1.1\r\n"
        "Host: localhost:8080\r\n"
        "Content-Type: %s\r\n"
        "Content-Length: %d\r\n"
        "\r\n" % (path, content_type, len(data))
    )
    return head.encode("ascii") + data


def delivery(path, items):
    body = json.dumps({"value": items}, indent=2, ensure_ascii=False)
    return request(path, "application/json; charset=utf-8", body)


FILES = {
    "validation.http": request("/api/notifications?" + VALIDATION_QUERY, "text/plain; charset=utf-8", ""),
    "created.http": delivery("/api/notifications", [change(PEER_TO_PEER, "created")]),
    "updated.http": delivery("/api/notifications", [
        change(GROUP_CALL, "updated", odata_type="#microsoft.graph.callrecord")]),
    "two-tenants.http": delivery("/api/notifications", [
        change(PSTN, "created"),
        change(GUEST_ANONYMOUS, "created", odata_type="#Microsoft.Graph.callrecord", tenant=FABRIKAM),
    ]),
    "forged-client-state.http": delivery("/api/notifications", [
        change(ODDITIES, "created"),
        change(FORGED, "created", client_state="not-the-secret"),
    ]),
    "odata-2023-names.http": delivery("/api/notifications", [
        change_2023(PSTN, both=False),
        change_2023(ODDITIES, both=True),
    ]),
    "mixed-lifecycle.http": delivery("/api/notifications", [
        change(PEER_TO_PEER, "created"),
        lifecycle("reauthorizationRequired"),
    ]),
    "lifecycle-reauthorization-required.http": delivery("/api/lifecycle", [
        lifecycle("reauthorizationRequired")]),
    "lifecycle-subscription-removed.http": delivery("/api/lifecycle", [
        lifecycle("subscriptionRemoved", expires="2026-11-26T09:12:00.0000000Z")]),
    "lifecycle-missed.http": delivery("/api/lifecycle", [lifecycle("missed")]),
}


def main():
    for name, raw in FILES.items():
        path = os.path.join(HERE, name)
        with open(path, "wb") as f:
            f.write(raw)
        print("wrote", path, len(raw), "bytes")


if __name__ == "__main__":
    main()
