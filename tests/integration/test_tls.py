#!/usr/bin/python3
"""tcp:// with TLS, the Docker CLI's way: a real dockerd listening with --tlsverify, the agent
given DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH holding ca.pem, cert.pem and key.pem. It works
unchanged; a certificate from another CA is refused and said so; a missing file is a
configuration error naming it."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None


def cert_dir(base, name, ca_pem, cert_pem, key_pem):
    """A DOCKER_CERT_PATH directory with the CLI's file names."""
    path = os.path.join(base, name)
    os.makedirs(path)
    for source, target in ((ca_pem, "ca.pem"), (cert_pem, "cert.pem"), (key_pem, "key.pem")):
        with open(source, "rb") as src, open(os.path.join(path, target), "wb") as dst:
            dst.write(src.read())
    return path


class Tls(h.WorkspaceTest):
    @classmethod
    def set_up(cls):
        pki = os.path.join(cls.ws.dir, "pki")
        os.makedirs(pki)
        h.make_ca(pki, "ca")
        h.make_ca(pki, "other-ca")
        h.make_signed(pki, "server", "ca", "subjectAltName=IP:127.0.0.1\n"
                                         "extendedKeyUsage=serverAuth")
        h.make_signed(pki, "client", "ca", "extendedKeyUsage=clientAuth")
        p = lambda name: os.path.join(pki, name)  # noqa: E731
        cls.good_certs = cert_dir(cls.ws.dir, "client-good", p("ca.pem"), p("client.pem"),
                                  p("client-key.pem"))
        cls.wrong_ca = cert_dir(cls.ws.dir, "client-wrong-ca", p("other-ca.pem"), p("client.pem"),
                                p("client-key.pem"))
        cls.port = h.free_port()
        cls.d = cls.ws.dockerd(extra_args=[
            "--host", f"tcp://127.0.0.1:{cls.port}", "--tlsverify", "--tlscacert", p("ca.pem"),
            "--tlscert", p("server.pem"), "--tlskey", p("server-key.pem")])
        cls.d.make_busybox_image()
        cls.pre = cls.d.docker("run", "-d", "--name", "pre", h.TEST_IMAGE, *h.IDLE_CMD)
        cls.endpoint = f"tcp://127.0.0.1:{cls.port}"

    def agent_with(self, name, cert_path):
        return self.ws.agent(ARGS.agent, self.endpoint, name=name,
                             env={"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": cert_path})

    def test_agent_works_over_tls(self):
        """snapshot and lifecycle records arrive through the TLS listener"""
        agent = self.agent_with("good", self.good_certs)
        agent.start()
        agent.wait_ready()
        new = self.d.docker("run", "-d", "--name", "new", h.TEST_IMAGE, *h.IDLE_CMD)

        def kinds():
            records = [json.loads(line) for line in h.read_ndjson(agent.data_dir)]
            return {(r["container"]["id"], r["kind"]) for r in records if "container" in r}
        h.wait_until(lambda: (new, "container.start") in kinds(), 20, "the start of 'new'")
        self.assertIn((self.pre, "container.snapshot"), kinds())
        code, _ = agent.stop()
        self.assertEqual(code, 0)

    def test_certificate_from_another_ca_is_refused(self):
        """the agent keeps running, not ready, and says the TLS handshake failed"""
        agent = self.agent_with("wrong", self.wrong_ca)
        agent.start()
        agent.wait_readyz(503, body_pred=lambda body: self.endpoint in body)
        status, body = agent.http_get("/readyz")
        self.assertEqual(status, 503)
        self.assertRegex(body.lower(), "ssl|certificate|tls")
        self.assertEqual(agent.metric_value("zastava_agent_docker_connected"), 0)
        code, _ = agent.stop()
        self.assertEqual(code, 0)

    def test_missing_certificate_file_is_a_configuration_error(self):
        """DOCKER_TLS_VERIFY=1 with an empty DOCKER_CERT_PATH: exit 2 naming ca.pem"""
        empty = os.path.join(self.ws.dir, "empty-certs")
        os.makedirs(empty)
        res = h.run_agent_once(ARGS.agent, ["--docker-endpoint", self.endpoint, "--check-config"],
                               env={"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": empty})
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("ca.pem", res.stderr)


if __name__ == "__main__":
    h.main(globals())
