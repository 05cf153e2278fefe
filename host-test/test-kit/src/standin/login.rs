//! The Entra ID stand-in: the client-credentials token endpoint (`/login/{tenant}/oauth2/v2.0/token`)
//! and the bearer-token check every other stand-in applies.

use super::*;

impl StandIns {
    pub(super) fn token(&self, st: &mut State, rest: &str, req: &Request) -> Answer {
        if self.faults.token_5xx > 0.0 && chance(&mut st.rng, self.faults.token_5xx) {
            st.counters.faults += 1;
            return Answer::json(503, json!({"error": "temporarily_unavailable", "error_description": "AADSTS90033"}));
        }
        let form: HashMap<String, String> = form_urlencoded::parse(&req.body).into_owned().collect();
        let tenant = rest.split('/').next().unwrap_or_default();
        let f = |k: &str| form.get(k).map(String::as_str);
        if req.method != "POST" || !rest.ends_with("/oauth2/v2.0/token") || ![CONTOSO, FABRIKAM].contains(&tenant) {
            return self.refuse_entra(st, 400, "invalid_request", "AADSTS90002: Tenant not found.");
        }
        if f("grant_type") != Some("client_credentials") {
            return self.refuse_entra(
                st,
                400,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
            );
        }
        if f("client_id") != Some(DEMO_CLIENT_ID) {
            return self.refuse_entra(
                st,
                400,
                "unauthorized_client",
                "AADSTS700016: Application with identifier was not found in the directory.",
            );
        }
        match (f("client_secret"), f("client_assertion_type"), f("client_assertion")) {
            (Some(secret), None, None) if secret == DEMO_CLIENT_SECRET => {}
            (None, Some(callrecords::entra::JWT_BEARER), Some(jwt)) => {
                let origin = self.identities.login_origin.as_deref().unwrap_or(&self.base);
                let token_url = format!("{origin}/login/{rest}");
                if let Err(refused) = self.check_assertion(st, jwt, DEMO_CLIENT_ID, &token_url) {
                    st.counters.refused += 1;
                    return refused;
                }
            }
            (None, Some(_), _) => {
                return self.refuse_entra(
                    st,
                    400,
                    "invalid_request",
                    "AADSTS50012: Client assertion type is not supported.",
                );
            }
            (None, None, None) => {
                return self.refuse_entra(
                    st,
                    401,
                    "invalid_client",
                    "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                );
            }
            _ => {
                return Answer::json(
                    401,
                    json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.", "error_codes": [7000215]}),
                );
            }
        }
        // Entra takes the Monitor resource with one slash or two before `.default` (the Azure SDKs,
        // Fluent Bit and Vector send one; Microsoft's Logs Ingestion docs show two).
        let audience = match f("scope") {
            Some("https://graph.microsoft.com/.default") => "graph",
            Some("https://monitor.azure.com//.default" | "https://monitor.azure.com/.default") => "monitor",
            _ => {
                return self.refuse_entra(
                    st,
                    400,
                    "invalid_scope",
                    "AADSTS70011: The provided value for scope is not valid.",
                );
            }
        };
        st.counters.tokens += 1;
        let token = format!("standin.{audience}.{tenant}.{}", st.counters.tokens);
        st.tokens.insert(token.clone(), audience);
        Answer::json(200, json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token}))
    }

    /// A refusal in Entra's flat error shape (not Graph's nested one).
    fn refuse_entra(&self, st: &mut State, status: u16, error: &str, description: &str) -> Answer {
        st.counters.refused += 1;
        st.last_refusal = Some(format!("{status} {error}: {description}"));
        let code: u32 = description.strip_prefix("AADSTS").and_then(|d| d.split(':').next()?.parse().ok()).unwrap_or(0);
        Answer::json(status, json!({"error": error, "error_description": description, "error_codes": [code]}))
    }

    pub(super) fn bearer_ok(&self, st: &mut State, req: &Request, audience: &str) -> Result<(), Answer> {
        let auth = header(&req.headers, "authorization").unwrap_or_default();
        let token = auth.strip_prefix("Bearer ").unwrap_or_default();
        match st.tokens.get(token) {
            Some(a) if *a == audience => Ok(()),
            Some(_) => Err(self.refuse(st, 401, "InvalidAuthenticationToken", "The token is for another audience.")),
            None if token.starts_with("standin.") => Err(Answer::json(
                401,
                json!({"error": {"code": "InvalidAuthenticationToken", "message": "Lifetime validation failed, the token is expired."}}),
            )),
            None => Err(self.refuse(st, 401, "InvalidAuthenticationToken", "Access token is empty or invalid.")),
        }
    }
}
