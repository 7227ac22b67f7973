//! TomoIDV's kyc_policy: the documented shapes, checked where the config is read and where
//! the sandbox receives a start request.

/// Check a kyc_policy against the documented shapes; returns its policy key (what results
/// made under it carry as `policy_key`): the preset name, or the method of a full policy.
pub fn check_policy(p: &serde_json::Value) -> Result<String, String> {
    let unsupported = || Err("Unsupported kyc_policy".to_string());
    let Some(obj) = p.as_object() else {
        return unsupported();
    };
    if let Some(preset) = obj.get("preset") {
        return match (preset.as_str(), obj.len()) {
            (Some("basic"), 1) => Ok("basic".into()),
            _ => unsupported(),
        };
    }
    let kind = p.pointer("/subject/kind").and_then(|v| v.as_str());
    let method = p.get("method").and_then(|v| v.as_str());
    let owner = p.pointer("/owner_assurance/kind").and_then(|v| v.as_str());
    let otp = p.pointer("/owner_assurance/type").and_then(|v| v.as_str());
    let id_type = p.pointer("/subject/id_type").and_then(|v| v.as_str());
    let subject_ok = match kind {
        Some("personal_info") => true,
        Some("document") => id_type.is_some_and(|t| !t.is_empty()),
        _ => false,
    };
    let owner_ok = match owner {
        Some("owner_verf") | Some("owner_check") => otp == Some("sms_otp"),
        Some("no_owner_assurance") => otp.is_none(),
        _ => false,
    };
    if subject_ok && owner_ok && method == Some("personal_info_verf") {
        Ok("personal_info_verf".into())
    } else {
        unsupported()
    }
}
