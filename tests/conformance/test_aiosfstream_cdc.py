"""Drives the emulator's Streaming API with the unmodified aiosfstream-ng client, a
Salesforce CometD client written against real orgs: handshake, subscribe with the replay
extension, long-polling connects, and a change event made through the REST API.

aiosfstream logs in at login.salesforce.com only, so the test gives it an authenticator
that logs in at the emulator's token endpoint (the client's documented extension point),
and its transport a TLS context that trusts the emulator's certificate. aiohttp keeps no
cookies for hosts that are IP addresses unless told to (a real org has a host name), and
the emulator, like Salesforce, answers `403::Unknown client` to a connect without the
`BAYEUX_BROWSER` cookie, so the client's HTTP session gets a jar that keeps them.
`tests/conformance.rs` starts the emulator and sets the environment.
"""

import asyncio
import os
import ssl
import uuid

import aiohttp
import pytest
import requests
from aiosfstream_ng import Client, ReplayOption
from aiosfstream_ng.auth import AuthenticatorBase

API_VERSION = os.environ.get("SFPG_EMULATOR_API_VERSION", "62.0")


def env(name):
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set; run through `cargo test --test conformance`")
    return value


class EmulatorAuthenticator(AuthenticatorBase):
    """The password flow against the emulator's token endpoint."""

    def __init__(self):
        super().__init__()
        self.ca_file = env("SFPG_EMULATOR_CA_FILE")
        self.token_url = env("SFPG_EMULATOR_TOKEN_URL")
        self.form = {
            "grant_type": "password",
            "client_id": env("SFPG_EMULATOR_CLIENT_ID"),
            "client_secret": env("SFPG_EMULATOR_CLIENT_SECRET"),
            "username": env("SFPG_EMULATOR_USERNAME"),
            "password": env("SFPG_EMULATOR_PASSWORD"),
        }

    async def _authenticate(self):
        response = await asyncio.to_thread(
            requests.post, self.token_url, data=self.form, verify=self.ca_file
        )
        return response.status_code, response.json()


def create_account(auth, name):
    response = requests.post(
        f"{auth.instance_url}/services/data/v{API_VERSION}/sobjects/Account",
        json={"Name": name, "BillingCity": "Lyon"},
        headers={
            "Authorization": f"Bearer {auth.access_token}",
            "Sforce-Call-Options": "client=aiosfstream",
        },
        verify=auth.ca_file,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def receive_one_change():
    auth = EmulatorAuthenticator()
    client = Client(auth, replay=ReplayOption.NEW_EVENTS)
    client.ssl = ssl.create_default_context(cafile=auth.ca_file)
    client._http_session = aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True)
    )
    await client.open()
    try:
        await client.subscribe("/data/AccountChangeEvent")
        name = f"aiosfstream {uuid.uuid4()}"
        record_id = await asyncio.to_thread(create_account, auth, name)
        message = await asyncio.wait_for(client.receive(), timeout=30)
        return record_id, name, message
    finally:
        await client.close()


def test_aiosfstream_receives_a_change_event():
    record_id, name, message = asyncio.run(receive_one_change())
    assert message["channel"] == "/data/AccountChangeEvent"
    payload = message["data"]["payload"]
    header = payload["ChangeEventHeader"]
    assert header["changeType"] == "CREATE"
    assert header["entityName"] == "Account"
    assert header["recordIds"] == [record_id]
    assert header["changeOrigin"].endswith(";client=aiosfstream")
    assert payload["Name"] == name
    assert payload["BillingAddress"]["City"] == "Lyon"
    assert isinstance(message["data"]["event"]["replayId"], int)
