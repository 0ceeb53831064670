"""The model registry read over MLflow's REST API with `requests` alone, for `mlimages registry list`.

Importing MLflow costs a fresh interpreter 2-5 s, more than listing 1,000 versions from a team
server takes. Listing needs a few read calls, so against a tracking server (``http(s)://``) the
command makes them itself and never imports MLflow. `RestRegistry` answers them with the names
and shapes of `mlflow.MlflowClient` (`search_registered_models`, `search_model_versions`,
`get_registered_model`), plus `serving_model_tags` (what each version was built from), so the
results table and the metrics files are one code for both paths.
Unlike the client, whose searches return one page (100 models, 10,000 versions), every search
here follows ``next_page_token`` to the end.

Connection settings are MLflow's own, read the way `mlflow.utils.credentials` and
`mlflow.utils.rest_utils` read them: ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``
(each one over the ``[mlflow]`` section of ``~/.mlflow/credentials``), else
``MLFLOW_TRACKING_TOKEN`` as a bearer token; ``MLFLOW_TRACKING_INSECURE_TLS``,
``MLFLOW_TRACKING_SERVER_CERT_PATH``, ``MLFLOW_TRACKING_CLIENT_CERT_PATH``,
``MLFLOW_HTTP_REQUEST_TIMEOUT`` and ``MLFLOW_WORKSPACE``. Settings that need MLflow's plugins
(``MLFLOW_TRACKING_AUTH``, ``MLFLOW_TRACKING_AWS_SIGV4``) keep the command on MLflow's client.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import re
from pathlib import Path
from typing import Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from mlimages.errors import InputError
from mlimages.tracking.names import SERVING_TAG

API = "/api/2.0/mlflow"
ALL_EXPERIMENTS = 3  # ViewType.ALL: the serving models of deleted experiments still describe their versions
PROMPT_TAG = "mlflow.prompt.is_prompt"  # prompts are registered models too; MlflowClient leaves them out
PLUGIN_SETTINGS = ("MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_AWS_SIGV4")
MODELS_PAGE = 1000  # the server's largest page of registered models
VERSIONS_PAGE = 10_000  # MlflowClient's page of versions (the server allows 200,000)
DEFAULT_TIMEOUT_S = 120  # MLflow's MLFLOW_HTTP_REQUEST_TIMEOUT default
# A busy or restarting server's answers are retried, as MLflow does (fewer times: a listing is
# rerun by hand); a refused connection or a TLS failure is not, so either is one line at once.
RETRY = Retry(total=3, connect=0, read=0, other=0, status=3, backoff_factor=0.5,
              status_forcelist=(429, 500, 502, 503, 504),
              allowed_methods=frozenset({"GET", "POST"}), raise_on_status=False)  # every call here only reads


@dataclasses.dataclass(frozen=True)
class ModelVersion:
    """A registered version as `mlflow.entities.model_registry.ModelVersion` presents it (the fields read here)."""

    name: str
    version: str
    run_id: str | None
    model_id: str | None
    source: str | None
    description: str | None
    tags: dict[str, str]
    aliases: list[str]


@dataclasses.dataclass(frozen=True)
class RegisteredModel:
    """A registered model with its tags and aliases (``{"champion": "3"}``), as MLflow's entity has them."""

    name: str
    description: str | None
    tags: dict[str, str]
    aliases: dict[str, str]


@dataclasses.dataclass(frozen=True)
class Connection:
    """Where the server is and how to authenticate, resolved once from the environment."""

    url: str
    basic_auth: tuple[str, str] | None
    token: str | None
    verify: bool | str  # requests' verify: False, True or a CA bundle
    client_cert: str | None
    timeout_s: float
    workspace: str | None

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token and not self.basic_auth else {}
        if self.workspace:
            headers["X-MLFLOW-WORKSPACE"] = self.workspace
        return headers


def registry_uri(environ: Mapping[str, str] = os.environ) -> str:
    """The registry MLflow would use: ``MLFLOW_REGISTRY_URI``, else the tracking URI ("" when unset)."""
    return (environ.get("MLFLOW_REGISTRY_URI") or environ.get("MLFLOW_TRACKING_URI") or "").strip()


def serves_rest(uri: str, environ: Mapping[str, str] = os.environ) -> bool:
    """True when `uri` is a tracking server this module can read without MLflow's auth plugins."""
    return uri.startswith(("http://", "https://")) and not any(environ.get(key) for key in PLUGIN_SETTINGS)


def read_connection(uri: str, environ: Mapping[str, str] = os.environ, home: Path | None = None) -> Connection:
    """The connection to `uri` from MLflow's environment variables and credentials file.

    Args:
        uri: the server, ``http(s)://host:port[/prefix]``.
        environ: the environment to read (the process's by default).
        home: where ``.mlflow/credentials`` is looked for; default the user's home.

    Raises:
        InputError: contradictory or malformed TLS or timeout settings.
    """
    file_user, file_password = read_credentials_file((home or Path.home()) / ".mlflow" / "credentials")
    user = environ.get("MLFLOW_TRACKING_USERNAME") or file_user
    password = environ.get("MLFLOW_TRACKING_PASSWORD") or file_password
    insecure = read_flag(environ, "MLFLOW_TRACKING_INSECURE_TLS")
    server_cert = environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None
    if insecure and server_cert:
        raise InputError("set only one of MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH",
                         "environment")
    timeout = environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or str(DEFAULT_TIMEOUT_S)
    if not timeout.isdigit():
        raise InputError(f"expected a whole number of seconds, got {timeout!r}", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    return Connection(url=uri.rstrip("/"), basic_auth=(user, password) if user and password else None,
                      token=environ.get("MLFLOW_TRACKING_TOKEN") or None,
                      verify=server_cert or not insecure, client_cert=environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"),
                      timeout_s=float(timeout), workspace=environ.get("MLFLOW_WORKSPACE") or None)


def read_credentials_file(path: Path) -> tuple[str | None, str | None]:
    """User and password of the ``[mlflow]`` section of MLflow's credentials file (None for what is missing)."""
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as error:
        raise InputError(f"not a credentials file ({type(error).__name__})", str(path)) from None
    if "mlflow" not in parser:
        return None, None
    section = parser["mlflow"]
    return section.get("mlflow_tracking_username"), section.get("mlflow_tracking_password")


def read_flag(environ: Mapping[str, str], key: str) -> bool:
    """A boolean setting as MLflow parses it: true/false/1/0 in any case; unset is false."""
    value = environ.get(key)
    if value is None:
        return False
    if value.lower() not in ("true", "false", "1", "0"):
        raise InputError(f"expected true, false, 1 or 0, got {value!r}", key)
    return value.lower() in ("true", "1")


class RestRegistry:
    """The registry's read calls the results table makes, over REST (see the module docstring).

    Args:
        connection: from `read_connection`.
        page_size: results per request for both searches; default the server's and client's pages.
    """

    def __init__(self, connection: Connection, page_size: int | None = None):
        self.connection = connection
        self.page_sizes = {"registered-models": page_size or MODELS_PAGE, "model-versions": page_size or VERSIONS_PAGE}
        self.session = requests.Session()
        self.session.auth = connection.basic_auth
        self.session.headers.update(connection.headers())
        self.session.mount("http://", HTTPAdapter(max_retries=RETRY))
        self.session.mount("https://", HTTPAdapter(max_retries=RETRY))

    def search_registered_models(self, filter_string: str | None = None) -> list[RegisteredModel]:
        """Every registered model matching `filter_string`, prompts left out as MlflowClient does."""
        if PROMPT_TAG not in (filter_string or ""):
            prompts_out = f"tag.`{PROMPT_TAG}` != 'true'"
            filter_string = f"{filter_string} AND {prompts_out}" if filter_string else prompts_out
        return [to_registered_model(m) for m in self.search("registered-models", filter_string)]

    def search_model_versions(self, filter_string: str | None = None) -> list[ModelVersion]:
        """Every model version matching `filter_string` (``name = 'NAME'``)."""
        return [to_model_version(v) for v in self.search("model-versions", filter_string)]

    def get_registered_model(self, name: str) -> RegisteredModel:
        return to_registered_model(self.get("registered-models/get", {"name": name})["registered_model"])

    def serving_model_tags(self) -> dict[str, dict[str, str]]:
        """The tags of every serving LoggedModel by model id (what `results_table.serving_model_tags` reads)."""
        query = {"view_type": ALL_EXPERIMENTS, "max_results": 1000}
        experiments = [e["experiment_id"] for e in self.pages("experiments/search", query, "experiments")]
        if not experiments:
            return {}
        query = {"experiment_ids": experiments, "filter": f"tags.`{SERVING_TAG}` = 'true'", "max_results": 1000}
        return {m["info"]["model_id"]: {t["key"]: t.get("value", "") for t in m["info"].get("tags", [])}
                for m in self.pages("logged-models/search", query, "models")}

    def search(self, kind: str, filter_string: str | None) -> Iterator[dict]:
        """The items of every page of ``{kind}/search`` (a GET), following ``next_page_token``."""
        params: dict[str, str | int] = {"max_results": self.page_sizes[kind]}
        if filter_string:
            params["filter"] = filter_string
        yield from self.pages(f"{kind}/search", params, kind.replace("-", "_"), post=False)

    def pages(self, endpoint: str, query: dict, key: str, post: bool = True) -> Iterator[dict]:
        """The items under `key` of every page of a search, following ``next_page_token``."""
        query = dict(query)
        while True:
            page = self.call(endpoint, query, post)
            yield from page.get(key, [])
            if not page.get("next_page_token"):
                return
            query["page_token"] = page["next_page_token"]

    def get(self, endpoint: str, params: Mapping[str, str | int]) -> dict:
        return self.call(endpoint, params, post=False)

    def call(self, endpoint: str, query: Mapping, post: bool) -> dict:
        """The JSON answer of ``GET`` (query in the URL) or ``POST`` (query as JSON) ``{API}/{endpoint}``;
        anything else is one `InputError` line."""
        where = public_url(self.connection.url)
        url, sent = f"{self.connection.url}{API}/{endpoint}", {"json": query} if post else {"params": query}
        try:
            # TLS settings per request: requests lets REQUESTS_CA_BUNDLE override a session's own `verify`
            response = self.session.request("POST" if post else "GET", url, timeout=self.connection.timeout_s,
                                            verify=self.connection.verify, cert=self.connection.client_cert, **sent)
        except requests.RequestException as error:
            raise InputError(f"cannot reach the tracking server ({describe_failure(error)})", where) from None
        if response.status_code != 200:
            raise InputError(describe_status(response, self.connection, endpoint), where)
        try:
            return response.json()
        except ValueError:
            raise InputError(f"{endpoint} did not answer JSON (is this an MLflow tracking server?)", where) from None


def to_model_version(item: dict) -> ModelVersion:
    """A version from its REST JSON, with the defaults MLflow's `ModelVersion.from_proto` gives missing fields."""
    return ModelVersion(name=item["name"], version=str(item["version"]), run_id=item.get("run_id"),
                        model_id=item.get("model_id"), source=item.get("source"), description=item.get("description"),
                        tags={t["key"]: t.get("value", "") for t in item.get("tags", [])},
                        aliases=list(item.get("aliases", [])))


def to_registered_model(item: dict) -> RegisteredModel:
    return RegisteredModel(name=item["name"], description=item.get("description"),
                           tags={t["key"]: t.get("value", "") for t in item.get("tags", [])},
                           aliases={a["alias"]: str(a["version"]) for a in item.get("aliases", [])})


def describe_status(response: requests.Response, connection: Connection, endpoint: str) -> str:
    """One line for a refused or failed call, naming the account (never its password or token)."""
    who = f"user {connection.basic_auth[0]!r}" if connection.basic_auth else (
        "the token in MLFLOW_TRACKING_TOKEN" if connection.token else "no credentials")
    if response.status_code == 401:
        return (f"401 unauthorized with {who}: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                "(or ~/.mlflow/credentials)")
    if response.status_code == 403:
        return f"403 forbidden: {who} may not read {endpoint} of the model registry"
    try:
        detail = response.json().get("message") or response.reason
    except ValueError:
        detail = response.reason
    first_line = (str(detail).strip().splitlines() or [""])[0]
    return f"{response.status_code} from the registry: {first_line}"


def describe_failure(error: requests.RequestException) -> str:
    """The reason of a failed request without the URL (which may carry credentials)."""
    if isinstance(error, requests.Timeout):
        return "no answer in time; MLFLOW_HTTP_REQUEST_TIMEOUT sets the limit"
    if isinstance(error, requests.exceptions.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(error):
        return "TLS verification failed: the server's certificate is not trusted; see MLFLOW_TRACKING_SERVER_CERT_PATH"
    over_tls = error.request is not None and str(error.request.url).startswith("https:")
    if isinstance(error, requests.exceptions.SSLError) or (over_tls and "Remote end closed connection" in str(error)):
        # TLS 1.3: a server that requires a client certificate refuses it after the client's side of the handshake
        return ("the server ended the TLS handshake; if it requires a client certificate, see "
                "MLFLOW_TRACKING_CLIENT_CERT_PATH")
    return socket_reason(str(error)) or type(error).__name__


def socket_reason(message: str) -> str | None:
    """The operating system's words in an error's message ("Connection refused", "Name or service not known")."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", message)
    return found[1].strip() if found else None


def public_url(url: str) -> str:
    """`url` without a ``user:password@`` part, fit for a message."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
