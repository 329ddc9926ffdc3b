//! The open (and a few closed) postings of the generated account: hand-written role texts turned
//! into Lever posting objects (§8.12) with multi-paragraph descriptions and HTML lists.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::generate::random_uuid;

/// What one posting says; the generator adds ids, users, urls and timestamps.
struct PostingSpec {
    family: &'static str,
    title: &'static str,
    state: &'static str,
    location: &'static str,
    commitment: &'static str,
    workplace: &'static str,
    salary: Option<(u32, u32)>,
    about: &'static str,
    role: &'static str,
    duties: &'static [&'static str],
    requirements: &'static [&'static str],
    nice: &'static [&'static str],
}

const CLOSING: &str = "We value diverse teams and welcome applicants of every background. If you are excited about this role but your experience does not match every point, we still encourage you to apply.";

static SPECS: &[PostingSpec] = &[
    PostingSpec {
        family: "rust_backend",
        title: "Senior Rust Backend Engineer",
        state: "published",
        location: "Boston, MA",
        commitment: "Full-time",
        workplace: "hybrid",
        salary: Some((165_000, 210_000)),
        about: "Our platform team builds the services that move every order, payment and shipment through the company. We are rewriting our most latency-sensitive paths in Rust and are looking for an engineer who enjoys making systems fast, safe and boring to operate.",
        role: "You will design and own backend services written in Rust on top of Tokio, talk to PostgreSQL and Kafka, and run them on Kubernetes. You will work closely with the infrastructure team on observability and with product engineers on clean APIs.",
        duties: &[
            "Design, build and operate high-throughput Rust services (Tokio, gRPC, REST)",
            "Model data in PostgreSQL and stream events through Kafka",
            "Profile and tune hot paths; own p99 latency and memory budgets",
            "Review code, mentor engineers new to Rust and raise the testing bar",
            "Share on-call for the services you build",
        ],
        requirements: &[
            "5+ years building backend systems, 2+ years of production Rust",
            "Solid grasp of async programming, ownership and concurrency",
            "Experience with relational databases and message queues",
            "Comfort with Linux, containers and CI/CD pipelines",
        ],
        nice: &[
            "Distributed systems experience (replication, consensus)",
            "C++ or Go background",
            "Open-source contributions",
        ],
    },
    PostingSpec {
        family: "nursing",
        title: "Registered Nurse - Medical/Surgical Unit",
        state: "published",
        location: "Chicago, IL",
        commitment: "Full-time",
        workplace: "onsite",
        salary: Some((78_000, 104_000)),
        about: "Our 32-bed medical-surgical unit cares for adults recovering from surgery and managing complex chronic conditions. We are a close team that values safe staffing, shared governance and continuous learning.",
        role: "As a Registered Nurse you will assess, plan and deliver care for a team of patients each shift, coordinate with physicians, therapists and case managers, and teach patients and families how to manage their care at home.",
        duties: &[
            "Provide direct patient care for 4 to 5 patients per shift",
            "Administer medications and IV therapy safely and document in Epic",
            "Monitor telemetry and escalate changes in condition",
            "Educate patients and families and prepare them for discharge",
            "Precept students and new graduate nurses",
        ],
        requirements: &[
            "Active RN license in the state (or compact license)",
            "BLS certification; ACLS within six months of hire",
            "1+ year of acute care experience preferred; new graduates welcome to the residency program",
        ],
        nice: &[
            "BSN degree",
            "Med-surg (CMSRN) certification",
            "Bilingual English/Spanish",
        ],
    },
    PostingSpec {
        family: "data_science",
        title: "Data Scientist, Experimentation",
        state: "published",
        location: "New York, NY",
        commitment: "Full-time",
        workplace: "hybrid",
        salary: Some((140_000, 175_000)),
        about: "We run hundreds of experiments a year across pricing, onboarding and marketplace matching. The experimentation group makes sure every one of them is designed well, measured honestly and turned into a decision.",
        role: "You will partner with product teams to design A/B tests, build statistical tooling in Python and SQL, and explain results to people who do not speak statistics. You will also build predictive models when a test is not the right tool.",
        duties: &[
            "Design and analyze A/B tests and quasi-experiments",
            "Build reusable Python and SQL tooling for metrics and variance reduction",
            "Develop forecasting and predictive models with scikit-learn",
            "Present findings and recommendations to product and leadership",
        ],
        requirements: &[
            "3+ years in data science or analytics",
            "Strong statistics: hypothesis testing, regression, causal inference",
            "Fluent in Python (pandas, NumPy) and SQL",
            "Clear written and verbal communication",
        ],
        nice: &[
            "Experience with Spark or a cloud data warehouse",
            "Bayesian methods",
            "Dashboarding in Tableau",
        ],
    },
    PostingSpec {
        family: "frontend",
        title: "Frontend Engineer (React)",
        state: "published",
        location: "Remote",
        commitment: "Full-time",
        workplace: "remote",
        salary: Some((120_000, 160_000)),
        about: "Our customer dashboard is used by thousands of operations teams every day. We want it to be fast, accessible and a pleasure to use.",
        role: "You will build features end to end in React and TypeScript, contribute to our design system and help us meet WCAG AA across the product.",
        duties: &[
            "Build product features in React and TypeScript",
            "Grow the component library and Storybook documentation",
            "Improve web performance and Core Web Vitals",
            "Write tests with Jest and Cypress",
        ],
        requirements: &[
            "3+ years of professional front-end development",
            "Deep knowledge of JavaScript, HTML and CSS",
            "Experience with accessibility standards",
        ],
        nice: &["GraphQL", "Next.js", "Design sensibility"],
    },
    PostingSpec {
        family: "devops",
        title: "Site Reliability Engineer",
        state: "published",
        location: "Seattle, WA",
        commitment: "Full-time",
        workplace: "hybrid",
        salary: Some((150_000, 190_000)),
        about: "Reliability is a feature. Our SRE team runs the Kubernetes platform, the CI/CD system and the observability stack every engineer depends on.",
        role: "You will automate infrastructure with Terraform, improve deployment pipelines, run incident reviews and help product teams set and meet their SLOs.",
        duties: &[
            "Operate and upgrade Kubernetes clusters on AWS",
            "Manage infrastructure as code with Terraform and Helm",
            "Own monitoring and alerting in Prometheus and Grafana",
            "Lead incident response and blameless postmortems",
        ],
        requirements: &[
            "4+ years in SRE, DevOps or infrastructure roles",
            "Strong Linux and networking fundamentals",
            "Scripting in Bash, Python or Go",
        ],
        nice: &[
            "CKA certification",
            "GitOps with Argo CD",
            "Cost optimization experience",
        ],
    },
    PostingSpec {
        family: "sales",
        title: "Account Executive, Mid-Market",
        state: "published",
        location: "Austin, TX",
        commitment: "Full-time",
        workplace: "hybrid",
        salary: Some((70_000, 90_000)),
        about: "Our sales team helps mid-sized companies replace spreadsheets with software their teams actually like. We sell with curiosity and honesty.",
        role: "You will run the full sales cycle for mid-market accounts, from discovery to negotiation, working with SDRs, solution engineers and customer success.",
        duties: &[
            "Own a pipeline of mid-market opportunities",
            "Run discovery calls and product demos",
            "Forecast accurately in Salesforce",
            "Negotiate and close annual contracts",
        ],
        requirements: &[
            "2+ years of closing experience in B2B SaaS",
            "Track record of meeting or exceeding quota",
            "Strong presentation skills",
        ],
        nice: &[
            "MEDDIC or similar methodology",
            "Experience selling to operations leaders",
        ],
    },
    PostingSpec {
        family: "design",
        title: "Product Designer",
        state: "internal",
        location: "San Francisco, CA",
        commitment: "Full-time",
        workplace: "hybrid",
        salary: Some((130_000, 165_000)),
        about: "Design sits at the center of how we build. Our designers own problems from research through launch.",
        role: "You will run user research, sketch and prototype in Figma, and partner with engineers to ship simple, accessible experiences.",
        duties: &[
            "Plan and run user interviews and usability tests",
            "Create flows, wireframes and high-fidelity prototypes",
            "Contribute to the design system",
        ],
        requirements: &[
            "A portfolio showing end-to-end product work",
            "Fluency in Figma",
            "Experience with accessibility and inclusive design",
        ],
        nice: &["Front-end skills (HTML, CSS)", "B2B product experience"],
    },
    PostingSpec {
        family: "finance",
        title: "Senior Financial Analyst (FP&A)",
        state: "published",
        location: "Chicago, IL",
        commitment: "Full-time",
        workplace: "onsite",
        salary: Some((95_000, 120_000)),
        about: "Finance partners with every department to plan and measure how we invest. We are growing and need an analyst who can build models people trust.",
        role: "You will own the operating budget model, lead variance analysis and prepare monthly management reporting for the leadership team.",
        duties: &[
            "Build and maintain financial models and forecasts",
            "Lead budgeting and monthly variance analysis",
            "Prepare board and management reporting",
        ],
        requirements: &[
            "4+ years in FP&A, corporate finance or accounting",
            "Advanced Excel and financial modeling",
            "Knowledge of GAAP",
        ],
        nice: &["NetSuite experience", "CPA or CFA progress"],
    },
    PostingSpec {
        family: "support",
        title: "Customer Support Specialist",
        state: "published",
        location: "Denver, CO",
        commitment: "Full-time",
        workplace: "remote",
        salary: Some((50_000, 62_000)),
        about: "Our support team is the voice of the customer inside the company. We answer fast, fix root causes and write things down.",
        role: "You will help customers by chat, email and phone, troubleshoot technical issues, and keep our help center accurate.",
        duties: &[
            "Resolve tickets in Zendesk across chat, email and phone",
            "Troubleshoot and escalate bugs with clear reproduction steps",
            "Write and update help center articles",
        ],
        requirements: &[
            "1+ year in customer support or customer service",
            "Excellent written communication",
            "Calm under pressure",
        ],
        nice: &["SaaS experience", "Basic SQL or API knowledge"],
    },
    PostingSpec {
        family: "mech_eng",
        title: "Mechanical Design Engineer",
        state: "published",
        location: "Detroit, MI",
        commitment: "Full-time",
        workplace: "onsite",
        salary: Some((90_000, 120_000)),
        about: "We design and build electric drivetrain components for commercial vehicles, from prototype to volume production.",
        role: "You will design parts and assemblies in SolidWorks, run analysis, and work with suppliers to make them manufacturable.",
        duties: &[
            "Design parts and assemblies in SolidWorks",
            "Apply GD&T and run tolerance stack-ups",
            "Perform FEA and thermal analysis",
            "Support prototype builds and DFM reviews",
        ],
        requirements: &[
            "BS in Mechanical Engineering",
            "3+ years of product design experience",
            "Hands-on prototyping skills",
        ],
        nice: &["Injection molding or sheet metal design", "MATLAB"],
    },
    PostingSpec {
        family: "recruiting",
        title: "Technical Recruiter",
        state: "closed",
        location: "Boston, MA",
        commitment: "Full-time",
        workplace: "hybrid",
        salary: None,
        about: "We are hiring engineers across platform, data and mobile, and want a recruiter who enjoys partnering deeply with hiring managers.",
        role: "You will run full-cycle searches, source passive candidates and keep the candidate experience excellent.",
        duties: &[
            "Run full-cycle recruiting for engineering roles",
            "Source with Boolean search and outreach",
            "Train interviewers on structured interviews",
        ],
        requirements: &[
            "3+ years of technical recruiting",
            "Experience with an ATS such as Lever or Greenhouse",
        ],
        nice: &["Diversity recruiting programs"],
    },
    PostingSpec {
        family: "security",
        title: "Application Security Engineer",
        state: "closed",
        location: "Remote",
        commitment: "Full-time",
        workplace: "remote",
        salary: Some((150_000, 185_000)),
        about: "Security is part of how we ship. The security team works with engineers early instead of blocking them late.",
        role: "You will threat-model new features, review code for security issues, and run our vulnerability management program.",
        duties: &[
            "Threat modeling and secure design reviews",
            "Secure code review against the OWASP Top 10",
            "Run penetration tests and track remediation",
        ],
        requirements: &[
            "3+ years in application security",
            "Ability to read and write code in at least one language",
        ],
        nice: &["OSCP", "Cloud security experience"],
    },
    PostingSpec {
        family: "general",
        title: "General Application - Talent Community",
        state: "internal",
        location: "Remote",
        commitment: "Full-time",
        workplace: "unspecified",
        salary: None,
        about: "Don't see the right opening today? Join our talent community and our recruiting team will reach out when a role that matches your background opens up.",
        role: "We hire across engineering, data, design, sales, marketing, finance, operations, clinical and legal teams. Tell us about your experience and the kind of work you are looking for next.",
        duties: &[
            "Share your resume and the roles that interest you",
            "Hear from a recruiter when a matching role opens",
        ],
        requirements: &["Experience in any of the fields we hire for"],
        nice: &["A note on your preferred locations and work arrangements"],
    },
];

/// Builds the postings of a generated account, returning each with its family key.
pub(crate) fn generate_postings(
    rng: &mut ChaCha8Rng,
    users: &[String],
    anchor: i64,
) -> Vec<(&'static str, Value)> {
    SPECS
        .iter()
        .map(|spec| (spec.family, posting(rng, spec, users, anchor)))
        .collect()
}

fn posting(rng: &mut ChaCha8Rng, spec: &PostingSpec, users: &[String], anchor: i64) -> Value {
    let id = random_uuid(rng);
    let owner = &users[rng.gen_range(0..3)];
    let hiring_manager = &users[rng.gen_range(3..users.len().min(7))];
    let created = anchor - rng.gen_range(20..400_i64) * 86_400_000;
    let updated = created + rng.gen_range(1..20_i64) * 86_400_000;
    let family = super::vocab::FAMILIES.iter().find(|f| f.key == spec.family);
    let (team, department) = family
        .map(|f| (f.team, f.department))
        .unwrap_or(("General", "General"));
    let paragraphs = [spec.about, spec.role];
    let description = paragraphs.join("\n\n");
    let description_html = paragraphs
        .iter()
        .map(|p| format!("<div>{p}</div>"))
        .collect::<Vec<_>>()
        .join("<div><br></div>");
    let list = |heading: &str, items: &[&str]| json!({"text": heading, "content": items.iter().map(|i| format!("<li>{i}</li>")).collect::<String>()});
    let channels = match spec.state {
        "published" => json!(["public", "internal"]),
        "internal" => json!(["internal"]),
        _ => Value::Null,
    };
    let mut value = json!({
        "id": id,
        "text": spec.title,
        "state": spec.state,
        "distributionChannels": channels,
        "confidentiality": "non-confidential",
        "user": owner,
        "owner": owner,
        "hiringManager": hiring_manager,
        "categories": {
            "team": team, "department": department, "location": spec.location,
            "commitment": spec.commitment, "level": null, "allLocations": [spec.location],
        },
        "tags": [department],
        "country": if spec.location == "Remote" { "US" } else if spec.location.ends_with("ON") { "CA" } else { "US" },
        "followers": [owner, hiring_manager],
        "content": {
            "description": description,
            "descriptionHtml": description_html,
            "lists": [
                list("What you'll do", spec.duties),
                list("What you bring", spec.requirements),
                list("Nice to have", spec.nice),
            ],
            "closing": CLOSING,
            "closingHtml": format!("<div>{CLOSING}</div>"),
        },
        "reqCode": null,
        "requisitionCodes": [],
        "urls": {
            "list": "https://jobs.lever.co/example",
            "show": format!("https://jobs.lever.co/example/{id}"),
            "apply": format!("https://jobs.lever.co/example/{id}/apply"),
        },
        "workplaceType": spec.workplace,
        "createdAt": created,
        "updatedAt": updated,
    });
    if let (Some((min, max)), Some(object)) = (spec.salary, value.as_object_mut()) {
        object.insert(
            "salaryRange".into(),
            json!({"min": min, "max": max, "currency": "USD", "interval": "per-year-salary"}),
        );
    }
    value
}
