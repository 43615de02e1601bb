// SPDX-License-Identifier: MIT OR Apache-2.0

//! Bus messages posted by `onenipdetect`, as typed structs that convert to and from the
//! `gst::Structure` of an element message.
//!
//! - `onenip-anomaly`: an anomalous episode starts or ends, or (message-mode=every-frame)
//!   one frame's result;
//! - `onenip-prompt`: a prompt was loaded, or refused and why;
//! - `onenip-provider`: what runs where (and a TensorRT engine build starting).

use gst::glib;

use crate::meta::RegionBox;

/// Reading a message structure that lacks a field or has the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{structure}: {reason}")]
pub struct MessageError {
    pub structure: String,
    pub reason: String,
}

fn field_error(s: &gst::StructureRef, e: impl std::fmt::Display) -> MessageError {
    MessageError {
        structure: s.name().to_string(),
        reason: e.to_string(),
    }
}

fn check_name(s: &gst::StructureRef, name: &str) -> Result<(), MessageError> {
    if s.name() == name {
        Ok(())
    } else {
        Err(field_error(s, format!("not an {name} structure")))
    }
}

/// What an `onenip-anomaly` message reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyEvent {
    /// An anomalous episode starts (after `min-anomalous-frames` anomalous frames).
    Start,
    /// It ends (after `hold-frames` normal frames).
    End,
    /// One frame's result (message-mode=every-frame).
    Frame,
}

impl AnomalyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::End => "end",
            Self::Frame => "frame",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Start, Self::End, Self::Frame]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

/// `onenip-anomaly`.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyMessage {
    pub event: AnomalyEvent,
    pub pts: Option<gst::ClockTime>,
    pub running_time: Option<gst::ClockTime>,
    /// Image score of the frame that triggered the message (for `end`, the last score).
    pub score: f32,
    /// True when the frame is anomalous (score above the image threshold).
    pub anomalous: bool,
    /// Highest score of the episode so far (`start`: the triggering frames).
    pub peak_score: f32,
    /// Regions of the frame, in frame pixels.
    pub regions: Vec<RegionBox>,
}

impl AnomalyMessage {
    pub const NAME: &'static str = "onenip-anomaly";

    pub fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(Self::NAME)
            .field("event", self.event.as_str())
            .field("pts", self.pts)
            .field("running-time", self.running_time)
            .field("score", self.score)
            .field("anomalous", self.anomalous)
            .field("peak-score", self.peak_score)
            .field("regions", RegionBox::to_array(&self.regions))
            .build()
    }

    pub fn from_structure(s: &gst::StructureRef) -> Result<Self, MessageError> {
        check_name(s, Self::NAME)?;
        let event: &str = s.get("event").map_err(|e| field_error(s, e))?;
        Ok(Self {
            event: AnomalyEvent::parse(event)
                .ok_or_else(|| field_error(s, format!("unknown event '{event}'")))?,
            pts: s.get("pts").map_err(|e| field_error(s, e))?,
            running_time: s.get("running-time").map_err(|e| field_error(s, e))?,
            score: s.get("score").map_err(|e| field_error(s, e))?,
            anomalous: s.get("anomalous").map_err(|e| field_error(s, e))?,
            peak_score: s.get("peak-score").map_err(|e| field_error(s, e))?,
            regions: RegionBox::from_array(
                &s.get::<gst::Array>("regions")
                    .map_err(|e| field_error(s, e))?,
            )
            .map_err(|e| field_error(s, e))?,
        })
    }
}

/// Whether a prompt was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptStatus {
    Loaded,
    Refused,
}

/// `onenip-prompt`.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptMessage {
    pub status: PromptStatus,
    /// The file, or `capture` for a prompt taken from the stream.
    pub location: String,
    /// Why it was refused (the old prompt stays in use).
    pub reason: Option<String>,
}

impl PromptMessage {
    pub const NAME: &'static str = "onenip-prompt";

    pub fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(Self::NAME)
            .field(
                "status",
                match self.status {
                    PromptStatus::Loaded => "loaded",
                    PromptStatus::Refused => "refused",
                },
            )
            .field("location", &self.location)
            .field_if_some("reason", self.reason.as_ref())
            .build()
    }

    pub fn from_structure(s: &gst::StructureRef) -> Result<Self, MessageError> {
        check_name(s, Self::NAME)?;
        let status = match s.get::<&str>("status").map_err(|e| field_error(s, e))? {
            "loaded" => PromptStatus::Loaded,
            "refused" => PromptStatus::Refused,
            other => return Err(field_error(s, format!("unknown status '{other}'"))),
        };
        Ok(Self {
            status,
            location: s.get("location").map_err(|e| field_error(s, e))?,
            reason: s.get_optional("reason").map_err(|e| field_error(s, e))?,
        })
    }
}

/// Where an `onenip-provider` message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderState {
    /// Sessions are being built (a TensorRT engine build can take minutes).
    Building,
    /// The element is ready to infer.
    Ready,
}

/// `onenip-provider`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderMessage {
    pub state: ProviderState,
    pub requested: String,
    /// The provider running; empty while building.
    pub active: String,
    /// "provider: reason" for each provider tried and not used.
    pub fallbacks: Vec<String>,
    pub model: String,
}

impl ProviderMessage {
    pub const NAME: &'static str = "onenip-provider";

    pub fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(Self::NAME)
            .field(
                "state",
                match self.state {
                    ProviderState::Building => "building",
                    ProviderState::Ready => "ready",
                },
            )
            .field("requested", &self.requested)
            .field("active", &self.active)
            .field(
                "fallbacks",
                gst::Array::new(self.fallbacks.iter().map(|f| f.to_send_value())),
            )
            .field("model", &self.model)
            .build()
    }

    pub fn from_structure(s: &gst::StructureRef) -> Result<Self, MessageError> {
        check_name(s, Self::NAME)?;
        let state = match s.get::<&str>("state").map_err(|e| field_error(s, e))? {
            "building" => ProviderState::Building,
            "ready" => ProviderState::Ready,
            other => return Err(field_error(s, format!("unknown state '{other}'"))),
        };
        let fallbacks = s
            .get::<gst::Array>("fallbacks")
            .map_err(|e| field_error(s, e))?
            .iter()
            .map(|v| v.get::<String>().map_err(|e| field_error(s, e)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            state,
            requested: s.get("requested").map_err(|e| field_error(s, e))?,
            active: s.get("active").map_err(|e| field_error(s, e))?,
            fallbacks,
            model: s.get("model").map_err(|e| field_error(s, e))?,
        })
    }
}

use glib::prelude::ToSendValue;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anomaly_message_round_trips() {
        gst::init().unwrap();
        let msg = AnomalyMessage {
            event: AnomalyEvent::Start,
            pts: Some(gst::ClockTime::from_mseconds(40)),
            running_time: None,
            score: 3.5,
            anomalous: true,
            peak_score: 4.0,
            regions: vec![RegionBox {
                x: 1,
                y: 2,
                width: 3,
                height: 4,
                peak: 5.0,
            }],
        };
        let s = msg.to_structure();
        assert_eq!(s.name(), "onenip-anomaly");
        assert_eq!(s.get::<&str>("event").unwrap(), "start");
        assert_eq!(AnomalyMessage::from_structure(&s).unwrap(), msg);
    }

    #[test]
    fn prompt_and_provider_messages_round_trip() {
        gst::init().unwrap();
        let p = PromptMessage {
            status: PromptStatus::Refused,
            location: "/x/bad.png".into(),
            reason: Some("not an image".into()),
        };
        assert_eq!(PromptMessage::from_structure(&p.to_structure()).unwrap(), p);
        let v = ProviderMessage {
            state: ProviderState::Ready,
            requested: "cuda".into(),
            active: "cpu".into(),
            fallbacks: vec!["cuda: not built in".into()],
            model: "/m".into(),
        };
        assert_eq!(
            ProviderMessage::from_structure(&v.to_structure()).unwrap(),
            v
        );
        let err = PromptMessage::from_structure(&v.to_structure()).unwrap_err();
        assert!(err.reason.contains("not an onenip-prompt"), "{err}");
    }
}
