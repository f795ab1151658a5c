DROP TABLE referral_facts;
