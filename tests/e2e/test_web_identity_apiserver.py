"""Web identity against a real kube-apiserver: its own service-account issuer as an OIDC provider.

The kube-apiserver serves its issuer's discovery and JWKS
(``--service-account-issuer`` = its own URL, ``--service-account-jwks-uri``);
anonymous reads of them are allowed as a real IRSA set-up does (the
``system:service-account-issuer-discovery`` ClusterRole bound to
``system:unauthenticated``). authbridge registers that issuer with the
cluster CA; a role trusts ``system:serviceaccount:ci:deployer`` with audience
``authbridge``; ``kubectl create token deployer -n ci --audience authbridge``
(the TokenRequest API when kubectl is not installed) gives the token, which
the exchange turns into a role session; a second kube-apiserver (the
``second_cluster`` fixture: its own certificates and service-account keys,
the same etcd under another ``--etcd-prefix``, its own webhook client of
authbridge), wired to authbridge's TokenReview webhook, sees the mapped user,
while a token the first cluster issued for its own API is refused there (401),
as is the web identity token on both: a token one cluster saw is worth
nothing elsewhere. The offline parts
(manifests, the trust document, the TokenRequest) are checked by
tests/e2e/test_harness.py without the binaries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Cluster
from tests.serving import LiveServer

NAMESPACE, ACCOUNT_NAME, AUDIENCE = "ci", "deployer", "authbridge"
KUBE_AUDIENCE = "https://kubernetes.default.svc"  # the apiservers' --api-audiences
ROLE_NAME = "Deployer"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"


def discovery_binding() -> dict[str, Any]:
    """Anonymous reads of the issuer's discovery and JWKS, as an IRSA set-up allows them."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "authbridge-e2e:service-account-issuer-discovery"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:service-account-issuer-discovery",
        },
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Group",
                "name": "system:unauthenticated",
            }
        ],
    }


def token_request(audience: str = AUDIENCE, seconds: int = 3600) -> dict[str, Any]:
    """The TokenRequest ``kubectl create token --audience`` sends."""
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"audiences": [audience], "expirationSeconds": seconds},
    }


def deployer_trust(provider_arn: str) -> dict[str, Any]:
    key = provider_arn.split(":oidc-provider/", 1)[1]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{key}:aud": AUDIENCE,
                        f"{key}:sub": f"system:serviceaccount:{NAMESPACE}:{ACCOUNT_NAME}",
                    }
                },
            }
        ],
    }


def create_token(cluster: Cluster, tmp_path: Path, audience: str = AUDIENCE) -> str:
    """``kubectl create token deployer -n ci --audience AUDIENCE`` (or its API call)."""
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        config = cluster.write_admin_kubeconfig(tmp_path / "admin.kubeconfig")
        out = subprocess.run(
            [kubectl, "--kubeconfig", str(config), "create", "token", ACCOUNT_NAME,
             "-n", NAMESPACE, "--audience", audience],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        return out.stdout.strip()
    status, body = cluster.call(
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{ACCOUNT_NAME}/token",
        token_request(audience),
    )
    assert status == 201, body
    token: str = body["status"]["token"]
    return token


def exchange(live: LiveServer, token: str) -> tuple[int, dict[str, str], bytes]:
    return live.request(
        "/oauth2/token",
        data=urllib.parse.urlencode(exchange_form(token)).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def exchange_form(token: str) -> dict[str, str]:
    return {
        "grant_type": EXCHANGE,
        "subject_token": token,
        "subject_token_type": ID_TOKEN,
        "role_arn": f"arn:aws:iam::111122223333:role/{ROLE_NAME}",
        "role_session_name": "ci-run",
        "audience": "prod",
    }


def test_a_service_account_token_of_one_apiserver_assumes_a_role_used_on_another(
    cluster: Cluster, second_cluster: Cluster, tmp_path: Path
) -> None:
    for path, doc in (
        ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", discovery_binding()),
        (
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        ),
        (
            f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT_NAME}},
        ),
    ):
        status, body = cluster.call("POST", path, doc)
        assert status in (201, 409), body
    live = cluster.authbridge
    ca = tmp_path / "cluster-ca.pem"
    ca.write_bytes(Path(cluster.ca_file).read_bytes())
    provider = json.loads(
        live.cli(
            f"-o json iam create-open-id-connect-provider --url {cluster.url}"
            f" --client-id-list {AUDIENCE} --ca-file {ca}"
        )
    )["OpenIDConnectProviderArn"]
    trust = tmp_path / "trust.json"
    trust.write_text(json.dumps(deployer_trust(provider)))
    live.cli(
        f"iam create-role --role-name {ROLE_NAME} --assume-role-policy-document file://{trust}"
    )

    # The first apiserver issues the web identity; the second, wired to authbridge's
    # webhook, sees the role session's mapped user.
    web_identity = create_token(cluster, tmp_path)
    status, _, raw = exchange(live, web_identity)
    body = json.loads(raw)
    assert status == 200, body
    status, review = second_cluster.whoami(body["access_token"])
    assert status == 201, review
    user = review["status"]["userInfo"]
    assert user["username"] == "deployer:ci-run"
    assert "authbridge:deployers" in user["groups"]

    # The first cluster's own token (for its API) is good there and nothing to the second
    # (another service-account issuer and key; authbridge's webhook takes only its own
    # tokens); the web identity token is no credential for either kube API.
    own = create_token(cluster, tmp_path, KUBE_AUDIENCE)
    status, review = cluster.whoami(own)
    assert status == 201, review
    assert review["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{NAMESPACE}:{ACCOUNT_NAME}"
    )
    for where, token in ((second_cluster, own), (second_cluster, web_identity),
                         (cluster, web_identity)):  # fmt: skip
        status, review = where.whoami(token)
        assert status == 401, (where.url, review)

    # A token of the same ServiceAccount for the kube-apiserver itself is no web identity.
    status, _, raw = exchange(live, own)
    assert status == 400
    assert "aud is none of the client ids" in json.loads(raw)["error_description"]
